#ifndef HOOKGUARD_CNATS_SHIM_H
#define HOOKGUARD_CNATS_SHIM_H
#include <nats/nats.h>
#endif
