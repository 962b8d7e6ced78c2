/* Fuzzing build (make fuzz): the host HAL with the native build's payload limit but
 * small capacities, so one execution stays fast and the NO_SPACE / capacity checks are
 * reachable with short inputs. Every size relation the sources assert still holds. */
#ifndef TR_BOARD_CONFIG_H
#define TR_BOARD_CONFIG_H

#ifndef TR_BOARD_NAME
#define TR_BOARD_NAME "fuzz"
#endif
#define TR_CLOCK_HZ 0u

#define TR_MAX_PAYLOAD 2048u
#define TR_RX_RING 256u
#define TR_PARAM_CAPACITY 4096u
#define TR_DATA_CAPACITY (16u * 1024u)
#define TR_MAX_SAMPLES 512u
#define TR_MAX_LAYERS 4u
#define TR_MAX_WIDTH 256u
#define TR_MAX_BATCH 64u
#define TR_BACKBONE_CAPACITY (8u * 1024u)
#define TR_BACKBONE_ACT_CAPACITY (4u * 1024u)
#define TR_BACKBONE_SCRATCH (2u * 1024u)
#define TR_BACKBONE_MAX_LAYERS 8u
#define TR_MAX_SAMPLE_FEATURES 2032u

#endif
