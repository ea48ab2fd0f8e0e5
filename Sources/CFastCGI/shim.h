#ifndef HOOKGUARD_CFASTCGI_SHIM_H
#define HOOKGUARD_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#include <sys/prctl.h>
#include <signal.h>

/* prctl is variadic, which Swift cannot call: the one use the server needs. */
static inline int hookguard_die_with_parent(void) {
    return prctl(PR_SET_PDEATHSIG, SIGKILL);
}
#endif
