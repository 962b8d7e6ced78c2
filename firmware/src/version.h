#ifndef TR_VERSION_H
#define TR_VERSION_H

/* The Makefile passes -DTR_FW_VERSION (FW_VERSION); the fallback keeps bare compiles working. */
#ifndef TR_FW_VERSION
#define TR_FW_VERSION "0.1.0"
#endif

/* Injected by the Makefile (tools/srchash.py); a bare compile still builds. */
#ifndef TR_BUILD_HASH
#define TR_BUILD_HASH "unknown"
#endif

#endif
