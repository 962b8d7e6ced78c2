/* Marker functions (see tr_marker.h). `noipa` keeps each one a real call to its own
 * address: no inlining, no cloning, and no identical-code folding (at -O2 GCC would
 * otherwise merge these identical empty bodies into one symbol). The empty asm keeps the
 * call from being dropped as side-effect free.
 *
 * The step markers also drive the board's measurement marker GPIO, if it has one
 * (board_config.h TR_MARKER_SET / TR_MARKER_CLR, set up by TR_MARKER_INIT in hal_init):
 * high from the start of a TRAIN_STEP's training work to its end, one pulse per step,
 * for a power monitor's logic input (docs/profiling.md "Marker GPIO"). Each is a single
 * store to a set/clear register, so the marker body stays one branch-free block ending in
 * BX LR: the instruction-count plugin, which skips marker blocks, counts the same. */
#include "board_config.h"
#include "tr_marker.h"

#ifndef TR_MARKER_SET /* no marker pin on this board (QEMU machines, native) */
#define TR_MARKER_SET() ((void)0)
#define TR_MARKER_CLR() ((void)0)
#endif

#define TR_MARK_DEF(w)                                                                     \
    __attribute__((noipa, used)) void tr_mark_##w##_begin(void) { __asm__ volatile(""); } \
    __attribute__((noipa, used)) void tr_mark_##w##_end(void) { __asm__ volatile(""); }

__attribute__((noipa, used)) void tr_mark_step_begin(void)
{
    __asm__ volatile("");
    TR_MARKER_SET();
}

__attribute__((noipa, used)) void tr_mark_step_end(void)
{
    __asm__ volatile("");
    TR_MARKER_CLR();
}

TR_MARK_DEF(select_msg)
TR_MARK_DEF(forward)
TR_MARK_DEF(backward)
TR_MARK_DEF(selection)
TR_MARK_DEF(update)
TR_MARK_DEF(loss)
