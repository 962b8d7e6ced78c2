/* Every number the firmware and the host must agree on over the wire (docs/protocol.md),
 * in one place and under one scheme: TR_<KIND>_<NAME>, with <NAME> spelled as the host's
 * enum member (rig/protocol.py) or strategy name (upper case, '-' -> '_').
 * tests/test_wire_ids.py parses this file (one `#define TR_<KIND>_<NAME> <int>u` per line,
 * nothing else) and fails if either side has an id the other lacks or spells differently.
 * Other headers include this one; they never restate a value. */
#ifndef TR_WIRE_IDS_H
#define TR_WIRE_IDS_H

/* ---- packet framing (protocol.md §2) --------------------------------------------- */
#define TR_PROTO_VERSION 1u
#define TR_PROTO_HEADER_SIZE 8u
#define TR_PROTO_CRC_SIZE 4u
#define TR_PROTO_RESPONSE_BIT 0x80u /* response type = request type | this */
#define TR_PROTO_FLAG_DUP 0x01u     /* response flag: replay of the last response */
#define TR_PROTO_NAK_TEXT_MAX 64u

/* ---- message types (MsgType) ----------------------------------------------------- */
#define TR_MSG_HELLO 0x01u
#define TR_MSG_ECHO 0x02u
#define TR_MSG_RESET 0x03u
#define TR_MSG_STATS 0x04u
#define TR_MSG_BAUD_SET 0x05u
#define TR_MSG_DEBUG 0x0Fu
#define TR_MSG_MODEL_INIT 0x10u
#define TR_MSG_PARAM_WRITE 0x11u
#define TR_MSG_PARAM_READ 0x12u
#define TR_MSG_TRAIN_CONFIG 0x13u
#define TR_MSG_BACKBONE_INIT 0x14u
#define TR_MSG_BACKBONE_WRITE 0x15u
#define TR_MSG_FEATURES 0x16u
#define TR_MSG_BACKBONE_INFO 0x17u
#define TR_MSG_DATA_CONFIG 0x20u
#define TR_MSG_DATA_WRITE 0x21u
#define TR_MSG_DATA_INFO 0x22u
#define TR_MSG_TRAIN_STEP 0x30u
#define TR_MSG_EVAL 0x31u
#define TR_MSG_SELECT 0x32u
#define TR_MSG_MASK_READ 0x33u
#define TR_MSG_UPDATE_READ 0x34u
#define TR_MSG_PARAM_DIGEST 0x35u
#define TR_MSG_FAULT 0x7Eu
#define TR_MSG_NAK 0x7Fu

/* ---- NAK reasons (NakReason); tr_status_t reuses them as its error values ---------- */
#define TR_NAK_BAD_CRC 1u
#define TR_NAK_BAD_COBS 2u
#define TR_NAK_TOO_LONG 3u
#define TR_NAK_BAD_HEADER 4u
#define TR_NAK_UNKNOWN_TYPE 5u
#define TR_NAK_BAD_LENGTH 6u
#define TR_NAK_BAD_ARG 7u
#define TR_NAK_BAD_STATE 8u
#define TR_NAK_NO_SPACE 9u

/* ---- DEBUG actions (DebugAction) -------------------------------------------------- */
#define TR_DEBUG_FAULT 1u
#define TR_DEBUG_HANG 2u

/* ---- PARAM_WRITE / PARAM_READ / UPDATE_READ `which` (Which) ------------------------ */
#define TR_WHICH_WEIGHT 0u /* row-major [out][in] */
#define TR_WHICH_BIAS 1u

/* ---- sample dtypes of DATA_CONFIG (DType) ------------------------------------------ */
#define TR_DTYPE_F32 0u
#define TR_DTYPE_U8 1u
#define TR_DTYPE_S8 2u

/* ---- HELLO counter_kind (CounterKind) --------------------------------------------- */
#define TR_COUNTER_NONE 0u
#define TR_COUNTER_DWT 1u
#define TR_COUNTER_SYSTICK 2u

/* ---- TRAIN_CONFIG strategy ids (the host's strategy catalogue) -------------------- */
#define TR_STRATEGY_FULL 0u
#define TR_STRATEGY_TINYPROP 1u
#define TR_STRATEGY_TINYPROPV2 2u
#define TR_STRATEGY_NEQ 3u
#define TR_STRATEGY_VELOCITY_BUDGET 4u
#define TR_STRATEGY_RANDOM_BUDGET 5u
#define TR_STRATEGY_STATIC 6u

/* ---- TRAIN_STEP counter phases: index into the response's counters[] (StepResult.PHASES)
 * and the phase-marker ids of tr_marker.h ------------------------------------------- */
#define TR_PHASE_FORWARD 0u
#define TR_PHASE_BACKWARD 1u
#define TR_PHASE_SELECTION 2u
#define TR_PHASE_UPDATE 3u

/* ---- BACKBONE_INIT layer ops (BackboneOp) ----------------------------------------- */
#define TR_BB_OP_CONV 0u
#define TR_BB_OP_DWCONV 1u
#define TR_BB_OP_FC 2u
#define TR_BB_OP_AVGPOOL 3u
#define TR_BB_OP_MAXPOOL 4u

/* ---- BACKBONE_INFO `kernels` (KernelImpl). The kernel library keeps its own
 * TR_NN_IMPL_* (it builds without src/); backbone.c asserts that they are equal. ---- */
#define TR_KERNELS_TINYRIG_C 0u
#define TR_KERNELS_TINYRIG_DSP 1u
#define TR_KERNELS_CMSIS_NN 2u

#endif
