/* Native (host process) build: the same limits as mps2-an386 so host tests exercise
 * the same capacities the emulated board has. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME /* normally -DTR_BOARD_NAME from the Makefile */
#define TR_BOARD_NAME "native"
#endif
#define TR_CLOCK_HZ 0u

#define TR_MAX_PAYLOAD 2048u
#define TR_RX_RING 256u
#define TR_PARAM_CAPACITY 131072u
#define TR_DATA_CAPACITY (512u * 1024u)
#define TR_MAX_SAMPLES 65536u
#define TR_MAX_LAYERS 6u
#define TR_MAX_WIDTH 256u
#define TR_MAX_BATCH 64u
/* int8 backbone (src/backbone.h): parameter blob, each of two activation buffers, kernel
 * scratch. The default digits CNN (rig/golden/quant.py) uses 1,568 + 2 x 1,024 + 48 B. */
#define TR_BACKBONE_CAPACITY (64u * 1024u)
#define TR_BACKBONE_ACT_CAPACITY (16u * 1024u)
#define TR_BACKBONE_SCRATCH (4u * 1024u)
#define TR_BACKBONE_MAX_LAYERS 8u
#define TR_MAX_SAMPLE_FEATURES 2032u /* backbone inputs up to 2032 B (one DATA_WRITE) */

#endif
