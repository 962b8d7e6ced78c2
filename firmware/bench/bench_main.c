/* Kernel benchmark: runs each case once between bench_begin()/bench_end() so the
 * insn_window TCG plugin (tools/qemu_plugin/insn_window.c) counts its retired
 * instructions exactly. Before each window a line "case <name> <macs>" goes out through
 * semihosting; benchmarks/kernel_instructions.py pairs the i-th line with the i-th window
 * and subtracts the first ("empty") window, the cost of the markers themselves.
 *
 * Cases: our fully-connected and convolution kernels (the build decides DSP or plain C:
 * see Makefile), a plain-C int8 reference loop (what a straightforward implementation
 * compiles to) and a plain-C float32 loop. Built with BENCH_CMSIS_NN (make
 * CMSIS_NN_ROOT=..., a CMSIS-NN copy the user supplies) the image runs Arm's
 * arm_fully_connected_s8 / arm_convolve_wrapper_s8 on the same shapes and data instead. */
#include <stdint.h>

#include "bench.h"
#include "tr_nn.h"
#include "tr_nn_support.h"
#ifdef BENCH_CMSIS_NN
#include <arm_nnfunctions.h>
#endif

__attribute__((noipa, used)) void bench_begin(void) { __asm__ volatile(""); }
__attribute__((noipa, used)) void bench_end(void) { __asm__ volatile(""); }

/* ---- data ------------------------------------------------------------------------------- */
#define MAX_W (256 * 128)
#define MAX_IN 4096
#define MAX_OUT 8192
#define MAX_CH 512

static int8_t weights[MAX_W];
static int8_t input[MAX_IN];
static int8_t output[MAX_OUT];
static int8_t output_ref[MAX_OUT];
static int32_t bias[MAX_CH];
static int32_t mult[MAX_CH];
static int32_t shift[MAX_CH];
static float weights_f[MAX_W];
static float input_f[MAX_IN];
static float output_f[MAX_OUT];
static float bias_f[MAX_CH];
static uint32_t scratch[2048];

static uint32_t rng = 0x12345678u;
static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void fill(void)
{
    for (int i = 0; i < MAX_W; i++) {
        weights[i] = (int8_t)(next() % 255u) - 127;
        weights_f[i] = (float)weights[i] * 0.01f;
    }
    for (int i = 0; i < MAX_IN; i++) {
        input[i] = (int8_t)next();
        input_f[i] = (float)input[i] * 0.02f;
    }
    for (int i = 0; i < MAX_CH; i++) {
        bias[i] = (int32_t)(next() % 20001u) - 10000;
        bias_f[i] = (float)bias[i] * 0.001f;
        mult[i] = (int32_t)(0x40000000u + (next() & 0x3FFFFFFFu));
        shift[i] = -(int32_t)(6u + next() % 6u);
    }
}

static void put_case(const char *name, uint32_t macs)
{
    char line[96];
    char *p = line;
    for (const char *s = "case "; *s;)
        *p++ = *s++;
    while (*name)
        *p++ = *name++;
    *p++ = ' ';
    char digits[12];
    int n = 0;
    do {
        digits[n++] = (char)('0' + macs % 10u);
        macs /= 10u;
    } while (macs);
    while (n)
        *p++ = digits[--n];
    *p++ = '\n';
    *p = 0;
    bench_puts(line);
}

#ifdef BENCH_CMSIS_NN
static void name_of(char *dst, const char *prefix, const char *shape)
{
    while (*prefix)
        *dst++ = *prefix++;
    while (*shape)
        *dst++ = *shape++;
    *dst = 0;
}
#endif

/* Our kernel's output (saved in output_ref by the caller's order: kernel first, then the
 * reference into `output`) must equal the plain-C reference loop's: a wrong fast path
 * fails the benchmark instead of looking fast. */
static void check_same(const char *name, int n)
{
    for (int i = 0; i < n; i++)
        if (output[i] != output_ref[i]) {
            bench_puts("mismatch ");
            bench_puts(name);
            bench_puts("\n");
            bench_exit(1);
        }
}

static void keep_output(int n)
{
    for (int i = 0; i < n; i++)
        output_ref[i] = output[i];
}

/* ---- plain-C references ------------------------------------------------------------------ */
__attribute__((noinline)) static void ref_fc_s8(const int8_t *x, const int8_t *w, const int32_t *b,
                                                int8_t *y, int cols, int rows, int32_t in_off,
                                                int32_t out_off, int32_t m, int32_t s)
{
    for (int r = 0; r < rows; r++) {
        int32_t acc = b[r];
        for (int c = 0; c < cols; c++)
            acc += (x[c] + in_off) * w[r * cols + c];
        y[r] = tr_nn_clamp_s8(tr_nn_requant(acc, m, s) + out_off, -128, 127);
    }
}

__attribute__((noinline)) static void ref_fc_f32(const float *x, const float *w, const float *b,
                                                 float *y, int cols, int rows)
{
    for (int r = 0; r < rows; r++) {
        float acc = 0.0f;
        for (int c = 0; c < cols; c++)
            acc += w[r * cols + c] * x[c];
        y[r] = acc + b[r];
    }
}

__attribute__((noinline)) static void ref_conv_s8(const int8_t *in, int H, int W, int C,
                                                  const int8_t *f, int OC, int K, int pad,
                                                  const int32_t *b, int8_t *out, int32_t in_off,
                                                  int32_t out_off)
{
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++)
            for (int oc = 0; oc < OC; oc++) {
                int32_t acc = b[oc];
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        const int iy = oy - pad + ky, ix = ox - pad + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        for (int c = 0; c < C; c++)
                            acc += (in[(iy * W + ix) * C + c] + in_off) *
                                   f[((oc * K + ky) * K + kx) * C + c];
                    }
                *out++ = tr_nn_clamp_s8(tr_nn_requant(acc, mult[oc], shift[oc]) + out_off, -128, 127);
            }
}

/* ---- cases ---------------------------------------------------------------------------------- */
static const struct {
    const char *name;
    int cols, rows;
} fc_shapes[] = {{"256x128", 256, 128}, {"512x10", 512, 10}, {"64x32", 64, 32}};

static const struct {
    const char *name;
    int hw, c, oc, k;
} conv_shapes[] = {
    {"16x16x16-k3-o32", 16, 16, 32, 3},
    {"8x8x1-k3-o16", 8, 1, 16, 3},    /* a small first layer */
    {"4x4x16-k1-o32", 4, 16, 32, 1},  /* pointwise */
    {"4x4x8-k1-o16", 4, 8, 16, 1},    /* default backbone, pointwise layer */
};

static void run_fc(void)
{
    const int32_t in_off = 3, out_off = -5;
    const tr_nn_fc_params fp = {in_off, 0, out_off, {-128, 127}};
    for (unsigned i = 0; i < sizeof fc_shapes / sizeof fc_shapes[0]; i++) {
        const int cols = fc_shapes[i].cols, rows = fc_shapes[i].rows;
        const tr_nn_per_tensor_quant_params q = {mult[0], shift[0]};
        const tr_nn_dims in_d = {1, 1, 1, cols}, f_d = {cols, 1, 1, rows}, b_d = {1, 1, 1, rows},
                         o_d = {1, 1, 1, rows};
        const tr_nn_context ctx = {scratch, (int32_t)sizeof scratch};
        char name[40] = "fc_s8/";
        char *p = name + 6;
        for (const char *s = fc_shapes[i].name; *s;)
            *p++ = *s++;
        *p = 0;
        put_case(name, (uint32_t)(cols * rows));
        bench_begin();
        tr_fully_connected_s8(&ctx, &fp, &q, &in_d, input, &f_d, weights, &b_d, bias, &o_d, output);
        bench_end();

        char name2[48] = "ref_fc_s8/";
        p = name2 + 10;
        for (const char *s = fc_shapes[i].name; *s;)
            *p++ = *s++;
        *p = 0;
        put_case(name2, (uint32_t)(cols * rows));
        keep_output(rows);
        bench_begin();
        ref_fc_s8(input, weights, bias, output, cols, rows, in_off, out_off, mult[0], shift[0]);
        bench_end();
        check_same(name, rows);

        char name3[48] = "ref_fc_f32/";
        p = name3 + 11;
        for (const char *s = fc_shapes[i].name; *s;)
            *p++ = *s++;
        *p = 0;
        put_case(name3, (uint32_t)(cols * rows));
        bench_begin();
        ref_fc_f32(input_f, weights_f, bias_f, output_f, cols, rows);
        bench_end();
    }
}

static void run_conv(void)
{
    const int32_t in_off = 7, out_off = -3;
    for (unsigned i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++) {
        const int hw = conv_shapes[i].hw, c = conv_shapes[i].c, oc = conv_shapes[i].oc,
                  k = conv_shapes[i].k, pad = k / 2;
        const uint32_t macs = (uint32_t)(hw * hw * oc * k * k * c);
        const tr_nn_conv_params cp = {in_off, out_off, {1, 1}, {pad, pad}, {1, 1}, {-128, 127}};
        const tr_nn_per_channel_quant_params q = {mult, shift};
        const tr_nn_dims in_d = {1, hw, hw, c}, f_d = {oc, k, k, c}, b_d = {1, 1, 1, oc},
                         o_d = {1, hw, hw, oc};
        const tr_nn_context ctx = {scratch, (int32_t)sizeof scratch};
        char name[48] = "conv_s8/";
        char *p = name + 8;
        for (const char *s = conv_shapes[i].name; *s;)
            *p++ = *s++;
        *p = 0;
        put_case(name, macs);
        bench_begin();
        tr_convolve_s8(&ctx, &cp, &q, &in_d, input, &f_d, weights, &b_d, bias, &o_d, output);
        bench_end();

        char name2[48] = "ref_conv_s8/";
        p = name2 + 12;
        for (const char *s = conv_shapes[i].name; *s;)
            *p++ = *s++;
        *p = 0;
        put_case(name2, macs);
        keep_output(hw * hw * oc);
        bench_begin();
        ref_conv_s8(input, hw, hw, c, weights, oc, k, pad, bias, output, in_off, out_off);
        bench_end();
        check_same(name, hw * hw * oc);
    }
}

#ifdef BENCH_CMSIS_NN
/* Arm's kernels on the same shapes, data and parameters. */
static void run_cmsis(void)
{
    char name[48];
    for (unsigned i = 0; i < sizeof fc_shapes / sizeof fc_shapes[0]; i++) {
        const int cols = fc_shapes[i].cols, rows = fc_shapes[i].rows;
        const cmsis_nn_fc_params fp = {3, 0, -5, {-128, 127}};
        const cmsis_nn_per_tensor_quant_params q = {mult[0], shift[0]};
        const cmsis_nn_dims in_d = {1, 1, 1, cols}, f_d = {cols, 1, 1, rows},
                            b_d = {1, 1, 1, rows}, o_d = {1, 1, 1, rows};
        const cmsis_nn_context ctx = {scratch, arm_fully_connected_s8_get_buffer_size(&f_d)};
        name_of(name, "cmsis_fc_s8/", fc_shapes[i].name);
        put_case(name, (uint32_t)(cols * rows));
        bench_begin();
        arm_fully_connected_s8(&ctx, &fp, &q, &in_d, input, &f_d, weights, &b_d, bias, &o_d,
                               output);
        bench_end();
    }
    for (unsigned i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++) {
        const int hw = conv_shapes[i].hw, c = conv_shapes[i].c, oc = conv_shapes[i].oc,
                  k = conv_shapes[i].k, pad = k / 2;
        const cmsis_nn_conv_params cp = {7, -3, {1, 1}, {pad, pad}, {1, 1}, {-128, 127}};
        const cmsis_nn_per_channel_quant_params q = {mult, shift};
        const cmsis_nn_dims in_d = {1, hw, hw, c}, f_d = {oc, k, k, c}, b_d = {1, 1, 1, oc},
                            o_d = {1, hw, hw, oc};
        const int32_t need = arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_d, &f_d, &o_d);
        if (need > (int32_t)sizeof scratch) {
            bench_puts("scratch too small\n");
            bench_exit(1);
        }
        const cmsis_nn_context ctx = {scratch, need};
        name_of(name, "cmsis_conv_s8/", conv_shapes[i].name);
        put_case(name, (uint32_t)(hw * hw * oc * k * k * c));
        bench_begin();
        arm_convolve_wrapper_s8(&ctx, &cp, &q, &in_d, input, &f_d, weights, &b_d, bias, &o_d,
                                output);
        bench_end();
    }
}
#endif

int main(void)
{
    fill();
    put_case("empty", 0);
    bench_begin();
    bench_end();
#ifdef BENCH_CMSIS_NN
    run_cmsis();
#else
    run_fc();
    run_conv();
#endif
    bench_puts("done\n");
    return 0;
}
