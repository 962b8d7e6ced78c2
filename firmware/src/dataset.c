#include "dataset.h"

#include <string.h>

#include "crc32.h"
#include "wire.h"

static uint8_t store[TR_DATA_CAPACITY];
/* Which samples were written: using an unwritten sample must be an error, not zeros. */
static uint8_t written[(TR_MAX_SAMPLES + 7u) / 8u];

/* Decoded value of every byte of an 8-bit dtype, filled at DATA_CONFIG by the very
 * formula of dataset_decode (so identical bits): decoding a sample becomes a table look-up.
 * 1 KB, so boards with a small data store (the microbit) decode arithmetically. */
#ifndef TR_DECODE_LUT
#define TR_DECODE_LUT (TR_DATA_CAPACITY >= 16384u)
#endif
#if TR_DECODE_LUT
static uint32_t decode_lut[256]; /* float bit patterns: copied as words, never converted */
#endif

void dataset_reset(dataset_t *ds)
{
    memset(ds, 0, sizeof *ds);
    memset(written, 0, sizeof written);
}

tr_status_t dataset_config(dataset_t *ds, const uint8_t *p, uint16_t len, tr_err_t *err)
{
    if (len != 16)
        return tr_fail(err, TR_E_BAD_LENGTH, 16, "DATA_CONFIG needs 16 B");
    uint16_t nf = rd_u16(p);
    uint8_t dtype = p[2];
    float scale = rd_f32(p + 4), zp = rd_f32(p + 8);
    uint32_t ns = rd_u32(p + 12);
    if (nf == 0 || nf > TR_MAX_SAMPLE_FEATURES)
        return tr_fail(err, TR_E_BAD_ARG, 0, "n_features not in 1..max sample features");
    if (dtype > TR_DTYPE_S8)
        return tr_fail(err, TR_E_BAD_ARG, 2, "dtype not 0/1/2");
    if (!f32_finite(scale))
        return tr_fail(err, TR_E_BAD_ARG, 4, "scale not finite");
    if (!f32_finite(zp))
        return tr_fail(err, TR_E_BAD_ARG, 8, "zero_point not finite");
    uint32_t rec = 1u + (uint32_t)nf * (dtype == TR_DTYPE_F32 ? 4u : 1u);
    if (ns > TR_MAX_SAMPLES || (uint64_t)ns * rec > TR_DATA_CAPACITY)
        return tr_fail(err, TR_E_NO_SPACE, 12, "n_samples exceeds data_capacity");
    dataset_reset(ds);
    ds->configured = 1;
    ds->dtype = dtype;
    ds->n_features = nf;
    ds->n_samples = ns;
    ds->rec_size = rec;
    ds->scale = scale;
    ds->zero_point = zp;
#if TR_DECODE_LUT
    for (unsigned b = 0; b < 256u; b++)
    {
        const float v = ((dtype == TR_DTYPE_S8 ? (float)(int8_t)b : (float)b) - zp) * scale;
        memcpy(&decode_lut[b], &v, sizeof v);
    }
#endif
    return TR_OK;
}

tr_status_t dataset_write(dataset_t *ds, const uint8_t *p, uint16_t len, tr_err_t *err)
{
    if (len < 8)
        return tr_fail(err, TR_E_BAD_LENGTH, 8, "DATA_WRITE header is 8 B");
    if (!ds->configured)
        return tr_fail(err, TR_E_BAD_STATE, 0, "no DATA_CONFIG");
    uint32_t start = rd_u32(p);
    uint16_t count = rd_u16(p + 4);
    if ((uint32_t)len != 8u + (uint32_t)count * ds->rec_size)
        return tr_fail(err, TR_E_BAD_LENGTH, 4, "len != 8 + count*record");
    if ((uint64_t)start + count > ds->n_samples)
        return tr_fail(err, TR_E_BAD_ARG, 0, "start+count > n_samples");
    memcpy(store + (size_t)start * ds->rec_size, p + 8, (size_t)count * ds->rec_size);
    for (uint32_t i = start; i < start + count; i++) {
        const uint8_t bit = (uint8_t)(1u << (i & 7u));
        if (!(written[i >> 3] & bit))
            ds->n_written++;
        written[i >> 3] |= bit;
    }
    return TR_OK;
}

int dataset_has(const dataset_t *ds, uint32_t i)
{
    return ds->configured && i < ds->n_samples && (written[i >> 3] >> (i & 7u)) & 1u;
}

uint8_t dataset_label(const dataset_t *ds, uint32_t i) { return store[(size_t)i * ds->rec_size]; }

const uint8_t *dataset_raw(const dataset_t *ds, uint32_t i)
{
    return store + (size_t)i * ds->rec_size + 1;
}

void dataset_decode(const dataset_t *ds, uint32_t i, float *out)
{
    const uint8_t *r = store + (size_t)i * ds->rec_size + 1;
    const uint16_t nf = ds->n_features;
    if (ds->dtype == TR_DTYPE_F32) {
        for (uint16_t k = 0; k < nf; k++)
            out[k] = rd_f32(r + 4u * k);
        return;
    }
#if TR_DECODE_LUT
    const uint8_t *q = r, *end4 = r + (nf & ~3u), *end = r + nf;
    for (; q != end4; q += 4, out += 4) { /* 4 per iteration: the head's input, every step */
        memcpy(out, &decode_lut[q[0]], sizeof(float));
        memcpy(out + 1, &decode_lut[q[1]], sizeof(float));
        memcpy(out + 2, &decode_lut[q[2]], sizeof(float));
        memcpy(out + 3, &decode_lut[q[3]], sizeof(float));
    }
    for (; q != end; q++)
        memcpy(out++, &decode_lut[*q], sizeof(float));
#else
    const float zp = ds->zero_point, sc = ds->scale; /* locals: out may alias *ds for C */
    if (ds->dtype == TR_DTYPE_U8)
        for (uint16_t k = 0; k < nf; k++)
            out[k] = ((float)r[k] - zp) * sc;
    else
        for (uint16_t k = 0; k < nf; k++)
            out[k] = ((float)(int8_t)r[k] - zp) * sc;
#endif
}

void dataset_info(const dataset_t *ds, uint8_t *out)
{
    /* The hash covers the DATA_CONFIG payload as the host sent it (reserved byte 0) and
     * every record in order: equal hashes mean the same samples decode the same way. */
    uint8_t cfg[16] = {0};
    uint32_t crc = 0;
    const uint8_t complete = ds->configured && ds->n_written == ds->n_samples;
    wr_u16(cfg, ds->n_features);
    cfg[2] = ds->dtype;
    wr_f32(cfg + 4, ds->scale);
    wr_f32(cfg + 8, ds->zero_point);
    wr_u32(cfg + 12, ds->n_samples);
    if (complete) {
        crc = crc32_update(0, cfg, sizeof cfg);
        crc = crc32_update(crc, store, (size_t)ds->n_samples * ds->rec_size);
    }
    out[0] = complete ? 2u : ds->configured ? 1u : 0u;
    out[1] = ds->dtype;
    memcpy(out + 2, cfg, 2);
    memcpy(out + 4, cfg + 12, 4);
    memcpy(out + 8, cfg + 4, 8);
    wr_u32(out + 16, ds->n_written);
    wr_u32(out + 20, crc);
}
