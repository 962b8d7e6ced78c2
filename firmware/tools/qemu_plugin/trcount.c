/* tinyrig instruction-count plugin for QEMU 7.2 (TCG plugin API version 1).
 *
 * Counts retired instructions inside marker windows and histograms them by instruction
 * class (thumb_class.h). A window opens when execution reaches its begin marker address
 * and closes when it reaches its end marker (firmware/src/tr_marker.h); a "record" window
 * (one TRAIN_STEP, one SELECT) writes one JSON line with every window's counts when it
 * closes and clears them all when it opens.
 *
 *   qemu-system-arm ... -plugin libtrcount.so,out=steps.jsonl,\
 *       win=step:33f4:33f8,rec=step,win=forward:3404:3408,exclude=37ac:37b4,...
 *
 * Arguments (QEMU passes each as "key=value"):
 *   out=PATH                 JSON lines are appended here (required)
 *   win=NAME:BEGIN:END       a window and its marker addresses (hex), up to 32
 *   rec=NAME                 NAME is a record window
 *   exclude=LO:HI            [LO, HI) is never counted (interrupt handlers: their
 *                            instructions land in a window at wall-clock-dependent points)
 *
 * How it counts: at translation every block gets a descriptor with the static counts of
 * its instructions (a block runs start to end: QEMU only leaves a block early on a
 * synchronous exception, which the training code never raises, and takes interrupts
 * between blocks). At execution the descriptor is added to every open window. Whether a
 * conditional branch ending a block was taken is read from the next block that runs: its
 * address is the fall-through or not. Marker blocks themselves are not counted.
 *
 * No header ships with Debian's QEMU 7.2, so the few API functions used are declared here,
 * with the version-1 signatures (include/qemu/qemu-plugin.h of QEMU 7.2; version 3 later
 * changed qemu_plugin_insn_data, which is why this file pins version 1).
 * Single vCPU only (all tinyrig machines have one). */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thumb_class.h"

/* ---- QEMU plugin API, version 1 (own declarations) ----------------------------------- */

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;

typedef struct qemu_info_t {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                          qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;
QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv);

/* ---- configuration ------------------------------------------------------------------- */

#define MAX_WIN 32
#define MAX_EXCL 64
#define NAME_LEN 40

typedef struct {
    char name[NAME_LEN];
    uint64_t begin, end;
    int record;
} win_cfg_t;

static win_cfg_t wins[MAX_WIN];
static int n_wins;
static struct {
    uint64_t lo, hi;
} excl[MAX_EXCL];
static int n_excl;
static FILE *out;

/* ---- state ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t entries;
    uint64_t insns;
    uint64_t c[TC_N_COUNTERS];
} win_acc_t;

static win_acc_t acc[MAX_WIN];
static uint32_t active;      /* bit w: window w is open */
static uint64_t rec_seq[MAX_WIN];
static uint64_t unbalanced;  /* begin while open / end while closed, since the record began */
static uint64_t total_insns; /* everything executed outside excluded ranges */
static uint64_t unknown_insns;

/* A conditional branch that ended the last counted block, resolved by the next block. */
static struct {
    int kind; /* 0 none, 1 b_cond, 2 IT-conditional branch */
    uint64_t fall;
    uint32_t mask;
} pending;

typedef struct {
    uint16_t idx;
    uint32_t count;
} pair_t;

typedef struct tb_desc {
    struct tb_desc *next; /* hash chain */
    uint64_t vaddr, fall, key;
    uint32_t n_insns;
    int8_t marker;        /* window index, -1 if not a marker block */
    uint8_t marker_end;
    uint8_t excluded;
    uint8_t last_branch;  /* 0, 1 b_cond, 2 IT-conditional branch */
    uint16_t n_pairs;
    pair_t pairs[];
} tb_desc_t;

#define HASH_BUCKETS 8192u
static tb_desc_t *buckets[HASH_BUCKETS];

/* ---- output ---------------------------------------------------------------------------- */

static void emit_counters(const win_acc_t *a)
{
    fprintf(out, "{\"entries\":%" PRIu64 ",\"insns\":%" PRIu64 ",\"classes\":{", a->entries,
            a->insns);
    int first = 1;
    for (unsigned k = 0; k < TC_N_CLASSES; k++)
        if (a->c[k]) {
            fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", tc_class_name(k), a->c[k]);
            first = 0;
        }
    fputs("},\"extra\":{", out);
    first = 1;
    for (unsigned k = 0; k < TX_N_EXTRAS; k++)
        if (a->c[TC_N_CLASSES + k]) {
            fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", tc_extra_name(k),
                    a->c[TC_N_CLASSES + k]);
            first = 0;
        }
    fputs("}}", out);
}

static void emit_record(int w)
{
    rec_seq[w]++;
    fprintf(out, "{\"rec\":\"%s\",\"seq\":%" PRIu64 ",\"unbalanced\":%" PRIu64
                 ",\"windows\":{",
            wins[w].name, rec_seq[w], unbalanced);
    int first = 1;
    for (int i = 0; i < n_wins; i++) {
        if (wins[i].record && i != w)
            continue;
        fprintf(out, "%s\"%s\":", first ? "" : ",", wins[i].name);
        emit_counters(&acc[i]);
        first = 0;
    }
    fputs("}}\n", out);
    fflush(out);
}

/* ---- execution ------------------------------------------------------------------------- */

static void on_marker(const tb_desc_t *d)
{
    const int w = d->marker;
    const uint32_t bit = 1u << w;
    if (!d->marker_end) {
        if (wins[w].record) {
            memset(acc, 0, sizeof acc);
            unbalanced = active ? 1u : 0u;
            active = 0;
        }
        if (active & bit)
            unbalanced++;
        active |= bit;
        acc[w].entries++;
    } else {
        if (!(active & bit))
            unbalanced++;
        active &= ~bit;
        if (wins[w].record) {
            if (active)
                unbalanced++;
            emit_record(w);
            active = 0;
        }
    }
}

static void on_tb_exec(unsigned int vcpu_index, void *userdata)
{
    const tb_desc_t *d = userdata;
    (void)vcpu_index;
    if (d->excluded)
        return; /* invisible; a pending branch stays pending across the handler */
    total_insns += d->n_insns;
    if (pending.kind) {
        if (d->vaddr != pending.fall) {
            const unsigned x = TC_N_CLASSES + (pending.kind == 1 ? TX_B_COND_TAKEN
                                                                  : TX_IT_BRANCH_TAKEN);
            for (uint32_t m = pending.mask; m; m &= m - 1u)
                acc[__builtin_ctz(m)].c[x]++;
        }
        pending.kind = 0;
    }
    if (d->marker >= 0) {
        on_marker(d);
        return;
    }
    if (!active)
        return;
    for (uint32_t m = active; m; m &= m - 1u) {
        win_acc_t *a = &acc[__builtin_ctz(m)];
        a->insns += d->n_insns;
        for (unsigned i = 0; i < d->n_pairs; i++)
            a->c[d->pairs[i].idx] += d->pairs[i].count;
    }
    if (d->last_branch) {
        pending.kind = d->last_branch;
        pending.fall = d->fall;
        pending.mask = active;
    }
}

/* ---- translation ----------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    const uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    enum { MAX_INSNS = 1024 };
    const uint8_t *bytes[MAX_INSNS];
    size_t lens[MAX_INSNS];
    const size_t m = n < MAX_INSNS ? n : MAX_INSNS;
    uint64_t key = 0xcbf29ce484222325ull ^ vaddr;
    uint64_t fall = vaddr;
    for (size_t i = 0; i < m; i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        bytes[i] = qemu_plugin_insn_data(insn);
        lens[i] = qemu_plugin_insn_size(insn);
        key = fnv1a(key, bytes[i], lens[i]);
        fall = qemu_plugin_insn_vaddr(insn) + lens[i];
    }
    key ^= (uint64_t)n << 48;

    /* Re-translations of the same code share one descriptor. */
    const unsigned b = (unsigned)((key ^ (key >> 29)) % HASH_BUCKETS);
    for (tb_desc_t *d = buckets[b]; d; d = d->next)
        if (d->key == key && d->vaddr == vaddr && d->n_insns == n && d->fall == fall) {
            qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, d);
            return;
        }

    uint64_t counters[TC_N_COUNTERS] = {0};
    uint8_t last_flags = 0;
    int last_in_it = 0;
    tc_block(bytes, lens, m, counters, &last_flags, &last_in_it);
    if (n > m)
        counters[TC_UNKNOWN] += n - m; /* never expected: QEMU caps blocks far lower */
    unknown_insns += counters[TC_UNKNOWN];

    unsigned n_pairs = 0;
    for (unsigned k = 0; k < TC_N_COUNTERS; k++)
        n_pairs += counters[k] != 0;
    tb_desc_t *d = calloc(1, sizeof *d + n_pairs * sizeof(pair_t));
    if (!d) {
        fputs("trcount: out of memory\n", stderr);
        abort();
    }
    d->vaddr = vaddr;
    d->fall = fall;
    d->key = key;
    d->n_insns = (uint32_t)n;
    d->marker = -1;
    for (int w = 0; w < n_wins; w++) {
        if (wins[w].begin == vaddr) {
            d->marker = (int8_t)w;
            d->marker_end = 0;
        } else if (wins[w].end == vaddr) {
            d->marker = (int8_t)w;
            d->marker_end = 1;
        }
    }
    for (int i = 0; i < n_excl; i++)
        if (vaddr >= excl[i].lo && vaddr < excl[i].hi)
            d->excluded = 1;
    if (last_flags & TCF_BRANCH) {
        if (last_flags & TCF_COND)
            d->last_branch = 1;
        else if (last_in_it)
            d->last_branch = 2;
    }
    for (unsigned k = 0; k < TC_N_COUNTERS; k++)
        if (counters[k]) {
            d->pairs[d->n_pairs].idx = (uint16_t)k;
            d->pairs[d->n_pairs].count = (uint32_t)counters[k];
            d->n_pairs++;
        }
    d->next = buckets[b];
    buckets[b] = d;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, d);
}

static void on_exit_cb(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    if (!out)
        return;
    fprintf(out, "{\"rec\":\"exit\",\"total_insns\":%" PRIu64 ",\"unknown_decoded\":%" PRIu64
                 ",\"open_windows\":%u}\n",
            total_insns, unknown_insns, active);
    fclose(out);
    out = NULL;
}

/* ---- arguments ------------------------------------------------------------------------- */

static int parse_hex(const char *s, uint64_t *v)
{
    char *end;
    if (!*s)
        return -1;
    *v = strtoull(s, &end, 16);
    return (*end == '\0' || *end == ':') ? (int)(end - s) : -1;
}

static int find_win(const char *name)
{
    for (int i = 0; i < n_wins; i++)
        if (strcmp(wins[i].name, name) == 0)
            return i;
    return -1;
}

static int bad(const char *arg, const char *why)
{
    fprintf(stderr, "trcount: bad argument '%s': %s\n", arg, why);
    return -1;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    const char *recs[MAX_WIN];
    int n_recs = 0;
    if (info->system_emulation && info->system.smp_vcpus > 1) {
        fputs("trcount: one vCPU only\n", stderr);
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "out=", 4) == 0) {
            path = a + 4;
        } else if (strncmp(a, "win=", 4) == 0) {
            const char *p = a + 4, *c = strchr(p, ':');
            if (!c || c == p || (size_t)(c - p) >= NAME_LEN)
                return bad(a, "expected win=NAME:BEGIN:END (hex)");
            if (n_wins == MAX_WIN)
                return bad(a, "too many windows");
            win_cfg_t *w = &wins[n_wins];
            memcpy(w->name, p, (size_t)(c - p));
            w->name[c - p] = '\0';
            int k = parse_hex(c + 1, &w->begin);
            if (k <= 0 || c[1 + k] != ':' || parse_hex(c + 2 + k, &w->end) <= 0)
                return bad(a, "expected win=NAME:BEGIN:END (hex)");
            if (find_win(w->name) >= 0)
                return bad(a, "window defined twice");
            n_wins++;
        } else if (strncmp(a, "rec=", 4) == 0) {
            if (n_recs == MAX_WIN)
                return bad(a, "too many records");
            recs[n_recs++] = a + 4;
        } else if (strncmp(a, "exclude=", 8) == 0) {
            if (n_excl == MAX_EXCL)
                return bad(a, "too many exclude ranges");
            int k = parse_hex(a + 8, &excl[n_excl].lo);
            if (k <= 0 || a[8 + k] != ':' || parse_hex(a + 9 + k, &excl[n_excl].hi) <= 0)
                return bad(a, "expected exclude=LO:HI (hex)");
            n_excl++;
        } else {
            return bad(a, "unknown key (out, win, rec, exclude)");
        }
    }
    for (int i = 0; i < n_recs; i++) {
        const int w = find_win(recs[i]);
        if (w < 0)
            return bad(recs[i], "rec= names no win=");
        wins[w].record = 1;
    }
    if (!path)
        return bad("", "out=PATH is required");
    out = fopen(path, "a");
    if (!out) {
        perror(path);
        return -1;
    }
    fprintf(out, "{\"rec\":\"start\",\"plugin\":\"trcount\",\"api\":1,\"qemu_api\":[%d,%d],"
                 "\"target\":\"%s\",\"classes\":[",
            info->version.min, info->version.cur, info->target_name);
    for (unsigned k = 0; k < TC_N_CLASSES; k++)
        fprintf(out, "%s\"%s\"", k ? "," : "", tc_class_name(k));
    fputs("],\"extras\":[", out);
    for (unsigned k = 0; k < TX_N_EXTRAS; k++)
        fprintf(out, "%s\"%s\"", k ? "," : "", tc_extra_name(k));
    fputs("],\"windows\":[", out);
    for (int i = 0; i < n_wins; i++)
        fprintf(out, "%s\"%s\"", i ? "," : "", wins[i].name);
    fputs("]}\n", out);
    fflush(out);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
