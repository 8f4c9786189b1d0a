/* What the CPU can do, read once at load time (fr_init), and the one switch
 * that depends on it: the packed AVX-512 path of the float32 products.  The
 * kernels only read the switch; it changes between calls, never inside a
 * parallel region.  No workspace, no threads. */
#include "fastrnn.h"
#include "avx512.h"

static fr_cpu_features cpu;      /* as fr_init read it */
static int initialised = 0;
static int packed_enabled = 0; /* the BLAS path until fr_init finds AVX-512 */

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
    packed_enabled = FR_HAVE_AVX512 && cpu.avx512f;
}

fr_cpu_features fr_cpu_flags(void) { return cpu; }

int fr_packed_enabled(void) { return packed_enabled; }

void fr_set_packed(int enabled)
{
    fr_init();
    packed_enabled = enabled && FR_HAVE_AVX512 && cpu.avx512f;
}

int fr_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
