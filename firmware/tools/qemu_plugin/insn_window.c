/* insn_window: a minimal QEMU TCG plugin that counts guest instructions executed between
 * two marker addresses (used by benchmarks/kernel_instructions.py and firmware/bench/).
 *
 *   qemu-system-arm ... -plugin libinsn_window.so,begin=0xADDR,end=0xADDR -d plugin -D log
 *
 * Every executed instruction adds 1 to a 64-bit counter (inline, exact). When the
 * instruction at `begin` executes, the counter is remembered; when the one at `end`
 * executes, one line "insn_window <n> <count>" is written to the plugin log (n counts
 * windows from 0). The count includes the instructions of the begin marker after its
 * first one and the call of the end marker; callers subtract an empty window. At exit:
 * "insn_window total <all instructions>".
 *
 * Debian's qemu-system-arm 7.2 supports -plugin and exports the qemu_plugin_* API v1
 * but ships no header, so the few types and functions used here are declared below
 * (QEMU 7.2 include/qemu/qemu-plugin.h, API version 1). Build with the host compiler:
 *   gcc -shared -fPIC -O2 -o libinsn_window.so insn_window.c
 * The profiling plugin of tools/qemu_plugin/ (per-phase, per-class counts) is separate. */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the part of qemu-plugin.h (QEMU 7.2, API v1) this plugin uses --------------------- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* only passed through */
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* ---- plugin ------------------------------------------------------------------------------ */
static uint64_t total;      /* instructions executed so far (single vCPU) */
static uint64_t begin_addr, end_addr;
static uint64_t at_begin;
static int in_window;
static unsigned windows;

static void on_begin(unsigned int vcpu, void *udata)
{
    (void)vcpu, (void)udata;
    at_begin = total;
    in_window = 1;
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu, (void)udata;
    if (!in_window)
        return;
    char line[80];
    snprintf(line, sizeof line, "insn_window %u %" PRIu64 "\n", windows++, total - at_begin);
    qemu_plugin_outs(line);
    in_window = 0;
}

static void on_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    const size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* Marker callbacks first, so they see the count before this instruction. */
        if (pc == begin_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == end_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
    }
}

static void on_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id, (void)udata;
    char line[80];
    snprintf(line, sizeof line, "insn_window total %" PRIu64 "\n", total);
    qemu_plugin_outs(line);
}

static int parse_addr(const char *arg, const char *key, uint64_t *out)
{
    const size_t k = strlen(key);
    if (strncmp(arg, key, k) != 0 || arg[k] != '=')
        return 0;
    char *end = NULL;
    *out = strtoull(arg + k + 1, &end, 0) & ~(uint64_t)1; /* drop the Thumb bit */
    return end && *end == '\0';
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                                const qemu_info_t *info,
                                                                int argc, char **argv)
{
    (void)info;
    int have_begin = 0, have_end = 0;
    for (int i = 0; i < argc; i++) {
        if (parse_addr(argv[i], "begin", &begin_addr))
            have_begin = 1;
        else if (parse_addr(argv[i], "end", &end_addr))
            have_end = 1;
        else {
            fprintf(stderr, "insn_window: unknown argument '%s' (want begin=ADDR,end=ADDR)\n",
                    argv[i]);
            return -1;
        }
    }
    if (!have_begin || !have_end) {
        fprintf(stderr, "insn_window: need begin=ADDR and end=ADDR\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
