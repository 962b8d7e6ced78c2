/* Stored samples, kept in their wire encoding (u8 label + features) to save RAM and
 * decoded per use exactly as docs/protocol.md §3 states. */
#ifndef TR_DATASET_H
#define TR_DATASET_H

#include <stdint.h>

#include "board_config.h"
#include "tr_status.h"
#include "wire_ids.h" /* TR_DTYPE_* */

/* Features per stored sample. Without a backbone the head needs n_features = dims[0] <=
 * max_width anyway; a backbone (backbone.h) may take bigger images. Boards may raise it
 * (BACKBONE_INFO reports it); a sample must still fit one DATA_WRITE. */
#ifndef TR_MAX_SAMPLE_FEATURES
#define TR_MAX_SAMPLE_FEATURES TR_MAX_WIDTH
#endif

typedef struct {
    uint8_t configured;
    uint8_t dtype;
    uint16_t n_features;
    uint32_t n_samples;
    uint32_t rec_size; /* 1 + n_features * element size */
    float scale, zero_point;
    uint32_t n_written; /* distinct samples written since DATA_CONFIG */
} dataset_t;

void dataset_reset(dataset_t *ds);

/* DATA_CONFIG payload (16 bytes). Validates, then forgets all stored samples. */
tr_status_t dataset_config(dataset_t *ds, const uint8_t *p, uint16_t len, tr_err_t *err);
/* DATA_WRITE payload. Validates length and range before copying. */
tr_status_t dataset_write(dataset_t *ds, const uint8_t *p, uint16_t len, tr_err_t *err);

/* DATA_INFO response (DATASET_INFO_SIZE bytes, docs/protocol.md §3): the stored set's layout,
 * how many samples are written and, once all are, the CRC-32 of DATA_CONFIG + records. */
#define DATASET_INFO_SIZE 24u
void dataset_info(const dataset_t *ds, uint8_t *out);

/* 1 if sample i has been written since the last DATA_CONFIG. */
int dataset_has(const dataset_t *ds, uint32_t i);
uint8_t dataset_label(const dataset_t *ds, uint32_t i);
/* Decode the features of sample i into out[n_features]. Caller checked i. */
void dataset_decode(const dataset_t *ds, uint32_t i, float *out);
/* The stored (encoded) feature bytes of sample i. Caller checked i. */
const uint8_t *dataset_raw(const dataset_t *ds, uint32_t i);

#endif
