/* The frozen int8 feature extractor in front of the float head (docs/protocol.md
 * BACKBONE_*, docs/training.md "int8 backbone").
 *
 * The backbone is streamed, not compiled in: BACKBONE_INIT describes the layers
 * (conv / depthwise / fully connected / average / max pool, each with its geometry,
 * offsets and fused activation range), BACKBONE_WRITE fills a parameter blob (per layer:
 * int8 weights padded to 4 bytes, int32 bias, multiplier and shift per output channel).
 * The first use after the last write verifies the blob's CRC-32 and runs every layer once
 * (so a kernel can never reject a layer in the middle of a training step).
 *
 * With a backbone, a stored u8/s8 sample becomes the int8 input (s8 as stored, u8 as
 * q - 128), runs through the layers, and the int8 features are dequantized
 * ((q - zero_point) · scale) into what the head sees as its input.
 *
 * Memory is fixed by board_config.h (a board that defines none has no backbone and NAKs
 * BACKBONE_INIT with NO_SPACE):
 *   TR_BACKBONE_CAPACITY      bytes of the parameter blob
 *   TR_BACKBONE_ACT_CAPACITY  bytes of each of the two int8 activation buffers
 *   TR_BACKBONE_SCRATCH       bytes of kernel scratch (im2col etc.)
 *   TR_BACKBONE_MAX_LAYERS    layers */
#ifndef TR_BACKBONE_H
#define TR_BACKBONE_H

#include <stdint.h>

#include "board_config.h"
#include "dataset.h"
#include "tr_status.h"
#include "wire_ids.h"

#ifndef TR_BACKBONE_CAPACITY
#define TR_BACKBONE_CAPACITY 0u
#endif
#ifndef TR_BACKBONE_ACT_CAPACITY
#define TR_BACKBONE_ACT_CAPACITY 0u
#endif
#ifndef TR_BACKBONE_SCRATCH
#define TR_BACKBONE_SCRATCH 0u
#endif
#ifndef TR_BACKBONE_MAX_LAYERS
#define TR_BACKBONE_MAX_LAYERS 8u
#endif

/* Layer ops: TR_BB_OP_* (wire_ids.h). */
#define BB_INIT_HEADER 28u
#define BB_LAYER_RECORD 28u
#define BB_INFO_SIZE 28u

/* Boot / RESET: no backbone. */
void backbone_reset(void);

/* BACKBONE_INIT payload -> response (16 bytes). Validates everything first. */
tr_status_t backbone_init(const uint8_t *req, uint16_t len, uint8_t *resp, uint16_t *resp_len,
                          tr_err_t *err);
/* BACKBONE_WRITE payload: u32 offset, bytes. */
tr_status_t backbone_write(const uint8_t *req, uint16_t len, tr_err_t *err);
/* BACKBONE_INFO response (BB_INFO_SIZE bytes). */
uint16_t backbone_info(uint8_t *resp);

/* 1 if a backbone (n_layers > 0) is configured. */
int backbone_active(void);
uint16_t backbone_n_features(void);

/* Before using stored samples with the backbone: blob verified (CRC, shifts, a trial run
 * of every layer), samples u8/s8 with n_features = in_h·in_w·in_c. TR_OK if no backbone. */
tr_status_t backbone_check(const dataset_t *ds, tr_err_t *err);

/* Width of the head's input: backbone features, or the samples' n_features. */
uint16_t backbone_input_width(const dataset_t *ds);

/* Sample i as the head's input (float[backbone_input_width]): through the backbone and
 * dequantized, or decoded as stored when there is none. Caller ran backbone_check. */
void backbone_input(const dataset_t *ds, uint32_t i, float *out);

/* int8 features of sample i (n_features bytes). Caller ran backbone_check. */
void backbone_features(const dataset_t *ds, uint32_t i, int8_t *out);

#endif
