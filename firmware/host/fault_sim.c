#include "fault_sim.h"

#include <string.h>

#include "proto.h"
#include "wire.h"

size_t sim_fault_bytes(uint8_t *out, size_t cap)
{
    static const char line[] = "\r\nFAULT exc=3 (simulated on host)\r\n";
    uint8_t pl[13 * 4];
    size_t n = sizeof line - 1;
    if (cap < n + 1)
        return 0;
    memset(pl, 0, sizeof pl);
    wr_u32(pl, SIM_FAULT_EXCEPTION);
    memcpy(out, line, n);
    out[n++] = 0; /* the text is one noise chunk, then a clean frame */
    return n + proto_build_frame(TR_MSG_FAULT, 0, 0, pl, sizeof pl, out + n, cap - n);
}
