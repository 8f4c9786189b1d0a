/* What the CPU can do, read once at load time (fr_init), and the one switch
 * that depends on it: the instruction set of the float32 products' packed
 * path (packed.h).  The kernels only read the switch; it changes between
 * calls, never inside a parallel region.  No workspace, no threads. */
#include "fastrnn.h"
#include "packed.h"

static fr_cpu_features cpu;      /* as fr_init read it */
static int initialised = 0;
static int best_isa = FR_ISA_NONE; /* as fr_init found it */
static int packed_isa = FR_ISA_NONE; /* the BLAS path until fr_init */

/* __builtin_cpu_supports fails to compile on a name the compiler does not
 * know: the newer names only where the compiler is known to have them. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FR_ASK(name) __builtin_cpu_supports(name)
#if (defined(__clang__) && __clang_major__ >= 16) || (!defined(__clang__) && __GNUC__ >= 11)
#define FR_ASK_NEW(name) __builtin_cpu_supports(name)
#else
#define FR_ASK_NEW(name) 0
#endif
#endif

void fr_init(void)
{
    if (initialised)
        return;
#ifdef FR_ASK
    __builtin_cpu_init();
    cpu.avx2 = FR_ASK("avx2") != 0;
    cpu.fma = FR_ASK("fma") != 0;
    cpu.avx512f = FR_ASK("avx512f") != 0;
    cpu.avx512_bf16 = FR_ASK_NEW("avx512bf16") != 0;
    cpu.avx512_vnni = FR_ASK_NEW("avx512vnni") != 0;
    cpu.avx_vnni = FR_ASK_NEW("avxvnni") != 0;
#endif
    initialised = 1;
    if (FR_HAVE_PACKED)
        best_isa = cpu.avx512f ? FR_ISA_AVX512 : cpu.avx2 && cpu.fma ? FR_ISA_AVX2 : FR_ISA_NONE;
    packed_isa = best_isa;
}

fr_cpu_features fr_cpu_flags(void) { return cpu; }

int fr_packed_best_isa(void) { return best_isa; }

int fr_packed_isa(void) { return packed_isa; }

int fr_packed_enabled(void) { return packed_isa != FR_ISA_NONE; }

void fr_set_packed_isa(int isa)
{
    fr_init();
    packed_isa = isa < FR_ISA_NONE ? FR_ISA_NONE : isa < best_isa ? isa : best_isa;
}

void fr_set_packed(int enabled) { fr_set_packed_isa(enabled ? FR_ISA_AVX512 : FR_ISA_NONE); }

int fr_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
