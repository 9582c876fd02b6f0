/* Stands in for the Windows SDK's stdlib.h, which Debian does not ship, so that ring's C
 * compiles with clang-cl for x86_64-pc-windows-msvc in scripts/cross.sh's checks (nothing is
 * linked or run there): ring includes it only for these two byte-swap intrinsics. */
#pragma once
unsigned long __cdecl _byteswap_ulong(unsigned long);
unsigned __int64 __cdecl _byteswap_uint64(unsigned __int64);
