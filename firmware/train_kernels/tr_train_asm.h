/* Internal to train_kernels/: spelling helpers for the Cortex-M4F inline assembly. */
#ifndef TR_TRAIN_ASM_H
#define TR_TRAIN_ASM_H

/* VMLA.F32 Sd, Sn, Sm: Sd = Sd + round(Sn*Sm), rounded (non-fused). */
#define TR_MLA(d, n, m) "vmla.f32 s" #d ", s" #n ", s" #m "\n\t"

#define TR_CLOBBER_S0_15                                                                   \
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", \
        "s14", "s15"
#define TR_CLOBBER_S16_31                                                                  \
    "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27",    \
        "s28", "s29", "s30", "s31"

/* +0.0f x 16: the starting value of every sum, loaded with one VLDM. */
extern const float tr_train_zeros[16];

#endif
