/* Stands in for the Apple SDK's TargetConditionals.h, which Debian does not ship, so that
 * ring's C compiles for *-apple-darwin in scripts/cross.sh's checks (nothing is linked or
 * run there). macOS: not an iPhone, simulator or watch. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_TV 0
#define TARGET_OS_SIMULATOR 0
