/* Marker functions (see tr_marker.h). `noipa` keeps each one a real call to its own
 * address: no inlining, no cloning, and no identical-code folding (at -O2 GCC would
 * otherwise merge these identical empty bodies into one symbol). The empty asm keeps the
 * call from being dropped as side-effect free. */
#include "tr_marker.h"

#define TR_MARK_DEF(w)                                                                     \
    __attribute__((noipa, used)) void tr_mark_##w##_begin(void) { __asm__ volatile(""); } \
    __attribute__((noipa, used)) void tr_mark_##w##_end(void) { __asm__ volatile(""); }

TR_MARK_DEF(step)
TR_MARK_DEF(select_msg)
TR_MARK_DEF(forward)
TR_MARK_DEF(backward)
TR_MARK_DEF(selection)
TR_MARK_DEF(update)
TR_MARK_DEF(loss)
