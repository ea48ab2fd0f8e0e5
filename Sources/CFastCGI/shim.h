#ifndef HOOKGUARD_CFASTCGI_SHIM_H
#define HOOKGUARD_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#endif
