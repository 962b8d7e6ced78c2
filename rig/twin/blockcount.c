/* The twin's block hook in C (rig/twin/accel.py builds it with the host compiler): called by
 * unicorn at the start of every translated block it executes, it counts the block's Thumb
 * instructions from the image bytes, notes the block for exact mid-block counts, spots
 * halt loops (`b .`) and stops the engine when the instruction budget is reached. A
 * Python block hook does the same (machine.py) where no compiler is available; this one
 * only removes the per-block Python call from the hot path. */
#include <stdint.h>

#define TWIN_REGIONS 6

typedef int (*twin_stop_fn)(void *uc);

struct twin_counter {
    uint64_t insns;    /* instructions executed (counted per block, at block entry) */
    uint64_t stop_at;  /* stop the engine once insns reaches this */
    uint64_t blk_addr; /* the block being executed */
    uint32_t blk_n;    /* its instructions */
    uint32_t blk_size; /* its bytes */
    uint32_t halted;   /* a branch-to-self block was entered */
    uint32_t n_regions;
    uint64_t outside;  /* a block outside every region (0: none) */
    uint64_t base[TWIN_REGIONS];
    uint64_t size[TWIN_REGIONS];
    const uint8_t *mem[TWIN_REGIONS];
    twin_stop_fn stop;
};

void twin_on_block(void *uc, uint64_t addr, uint32_t size, void *user)
{
    struct twin_counter *c = user;
    const uint8_t *p = 0;
    for (uint32_t r = 0; r < c->n_regions && r < TWIN_REGIONS; r++)
        if (addr >= c->base[r] && addr + size <= c->base[r] + c->size[r]) {
            p = c->mem[r] + (addr - c->base[r]);
            break;
        }
    if (!p) {
        c->outside = addr | 1u;
        c->stop(uc);
        return;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < size;) {
        uint32_t hw = (uint32_t)p[i] | ((i + 1 < size ? (uint32_t)p[i + 1] : 0u) << 8);
        i += (hw >> 11) >= 0x1Du ? 4u : 2u; /* 0b11101, 0b11110, 0b11111: 32-bit */
        n++;
    }
    c->insns += n;
    c->blk_addr = addr;
    c->blk_n = n;
    c->blk_size = size;
    if ((size == 2 && p[0] == 0xFE && p[1] == 0xE7) ||
        (size == 4 && p[0] == 0xFF && p[1] == 0xF7 && p[2] == 0xFE && p[3] == 0xBF)) {
        c->halted = 1;
        c->stop(uc);
    } else if (c->insns >= c->stop_at) {
        c->stop(uc);
    }
}

/* Does nothing: registered as a memory hook on the peripheral windows only so that unicorn
 * keeps the PC exact at every load and store (without a memory hook it is synced only at
 * block boundaries, and the MMIO models would log the wrong instruction). */
void twin_mem_sync(void *uc, int type, uint64_t addr, int size, int64_t value, void *user)
{
    (void)uc;
    (void)type;
    (void)addr;
    (void)size;
    (void)value;
    (void)user;
}
