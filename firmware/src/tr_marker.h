/* Phase markers: how an emulator sees where the training phases begin and end.
 *
 * Every event is its own empty, never-inlined, never-merged function, so "execution reached
 * this symbol's address" is the whole signal: an emulator needs no register access (the QEMU
 * 7.2 TCG plugin API has none). The host resolves the tr_mark_<window>_{begin,end} symbols
 * from the ELF and hands their addresses to the instruction-count plugin
 * (tools/qemu_plugin/) or to the unicorn cross-check (rig/profile/). A window's counted
 * instructions are those executed after its begin marker returns and before its end marker
 * is called; the markers' own instructions are never counted.
 *
 * Windows: step (one TRAIN_STEP's training work), select_msg (a SELECT message's strategy
 * hook), the four counter phases forward / backward / selection / update, and loss, which
 * is nested inside forward (softmax, loss, output error: the protocol reports it as part of
 * forward; only the instruction counts split it out).
 *
 * The phase helpers read the device counter *outside* the marker pair, so the counter read
 * (and its retry loop) never falls inside an instruction-count window, while the device
 * counter includes the two marker calls (BL + BX LR each, ~4-8 cycles per phase on a board).
 * On the native build the markers are plain empty functions. */
#ifndef TR_MARKER_H
#define TR_MARKER_H

#include <stdint.h>

#include "hal.h"

#define TR_MARK_DECL(w)                                                                    \
    void tr_mark_##w##_begin(void);                                                        \
    void tr_mark_##w##_end(void);
TR_MARK_DECL(step)
TR_MARK_DECL(select_msg)
TR_MARK_DECL(forward)
TR_MARK_DECL(backward)
TR_MARK_DECL(selection)
TR_MARK_DECL(update)
TR_MARK_DECL(loss)
#undef TR_MARK_DECL

/* Phase ids = TR_PHASE_* (wire_ids.h): 0 forward, 1 backward, 2 selection, 3 update;
 * 4 = loss (instruction counts only, not on the wire). */
#define TR_MARK_LOSS 4u

static inline void tr_mark_begin(unsigned ph)
{
    switch (ph) {
    case TR_PHASE_FORWARD: tr_mark_forward_begin(); break;
    case TR_PHASE_BACKWARD: tr_mark_backward_begin(); break;
    case TR_PHASE_SELECTION: tr_mark_selection_begin(); break;
    case TR_PHASE_UPDATE: tr_mark_update_begin(); break;
    default: tr_mark_loss_begin(); break;
    }
}

static inline void tr_mark_end(unsigned ph)
{
    switch (ph) {
    case TR_PHASE_FORWARD: tr_mark_forward_end(); break;
    case TR_PHASE_BACKWARD: tr_mark_backward_end(); break;
    case TR_PHASE_SELECTION: tr_mark_selection_end(); break;
    case TR_PHASE_UPDATE: tr_mark_update_end(); break;
    default: tr_mark_loss_end(); break;
    }
}

/* t0 = tr_phase_begin(PH) ... t = tr_phase_end(PH): counter read outside the markers. */
static inline uint32_t tr_phase_begin(unsigned ph)
{
    uint32_t t = hal_counter_read();
    tr_mark_begin(ph);
    return t;
}

static inline uint32_t tr_phase_end(unsigned ph)
{
    tr_mark_end(ph);
    return hal_counter_read();
}

#endif
