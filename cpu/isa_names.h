/* isa_names.h: one name per kernel set for every function the fast kernels define.
 *
 * The fast kernels (the files of TR_CPU_ISA_SOURCES in CMakeLists.txt) are compiled once per x86-64
 * level, each time with that level's -march and TR_ISA set to its name (v2, avx2, avx512, ...), and
 * linked into the same library. Their external names would collide, so with TR_ISA defined each is
 * suffixed with it: matmul_fast becomes matmul_fast_avx2. Only kernel_set.c's table (tr_cpu_kernel_table_avx2), named the same
 * way, is reached from outside (cpu/kernel_set.h); everything else the kernels call of each other
 * stays inside one set. A new external function in those files gets a line here, or the link fails
 * with a duplicate symbol. */
#ifndef TR_CPU_ISA_NAMES_H
#define TR_CPU_ISA_NAMES_H

#ifdef TR_ISA
#define TR_ISA_JOIN2(name, isa) name##_##isa
#define TR_ISA_JOIN(name, isa) TR_ISA_JOIN2(name, isa)
#define TR_ISA_NAME(name) TR_ISA_JOIN(name, TR_ISA)

#define attention_f32_fast TR_ISA_NAME(attention_f32_fast)
#define glu_f32_fast TR_ISA_NAME(glu_f32_fast)
#define matmul_fast TR_ISA_NAME(matmul_fast)
#define matmul_quant TR_ISA_NAME(matmul_quant)
#define rms_norm_f32_fast TR_ISA_NAME(rms_norm_f32_fast)
#define rope_f32_fast TR_ISA_NAME(rope_f32_fast)
#define tr_attention_scratch_floats TR_ISA_NAME(tr_attention_scratch_floats)
#define tr_float_gemm TR_ISA_NAME(tr_float_gemm)
#define tr_float_gemm_space_floats TR_ISA_NAME(tr_float_gemm_space_floats)
#define tr_float_gemm_supports TR_ISA_NAME(tr_float_gemm_supports)
#define tr_float_gemm_thread_floats TR_ISA_NAME(tr_float_gemm_thread_floats)
#define tr_matmul_panel_floats TR_ISA_NAME(tr_matmul_panel_floats)
#define tr_matmul_quant_scratch_floats TR_ISA_NAME(tr_matmul_quant_scratch_floats)
#define tr_matmul_thread_floats TR_ISA_NAME(tr_matmul_thread_floats)
#define tr_q4_K_x16_dot TR_ISA_NAME(tr_q4_K_x16_dot)
#define tr_q8_round TR_ISA_NAME(tr_q8_round)
#define tr_qgemm TR_ISA_NAME(tr_qgemm)
#define tr_qgemm_space_floats TR_ISA_NAME(tr_qgemm_space_floats)
#define tr_qgemm_supports TR_ISA_NAME(tr_qgemm_supports)
#define tr_qgemm_thread_floats TR_ISA_NAME(tr_qgemm_thread_floats)
#define tr_qtile_k45_avx512 TR_ISA_NAME(tr_qtile_k45_avx512)
#define tr_qtile_q6_K_avx512 TR_ISA_NAME(tr_qtile_q6_K_avx512)
#define tr_quant_tiled TR_ISA_NAME(tr_quant_tiled)
#define tr_repack TR_ISA_NAME(tr_repack)
#define tr_repack_eligible TR_ISA_NAME(tr_repack_eligible)
#define tr_repack_free TR_ISA_NAME(tr_repack_free)
#define tr_repacked TR_ISA_NAME(tr_repacked)
#define tr_cpu_kernel_table TR_ISA_NAME(tr_cpu_kernel_table)
#endif

#endif
