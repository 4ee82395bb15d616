// The kernel table of one SIMD level, built from the functions that the
// simd_*.inl files defined in the including file. That file names the table
// and its Isa with NATIVELM_KERNEL_TABLE and NATIVELM_KERNEL_ISA.
extern const Kernels NATIVELM_KERNEL_TABLE = {
    .isa = Isa::NATIVELM_KERNEL_ISA,
    .gemv = gemv,
    .gemm_pack_x = gemm_pack_x,
    .gemm = gemm,
    .gemm_rows = kMR,
    .gemm_panel = kNR,
    .gemm_packed_floats = gemm_packed_floats,
    .gemm_scratch_floats = gemm_scratch_floats,
    .pack_kv = pack_kv,
    .attend = attend,
    .attend_direct = attend_direct,
    .attn_block = kNR,
    .attn_rows = kMR,
    .attn_scratch_floats = attn_scratch_floats,
    .silu_mul = silu_mul,
};
#undef NATIVELM_KERNEL_TABLE
#undef NATIVELM_KERNEL_ISA
