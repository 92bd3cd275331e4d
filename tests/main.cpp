// Catch2's own signal handlers would replace twistlet's stack-overflow handler (the one that
// names the overflowing tasklet), so they are left out.
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
