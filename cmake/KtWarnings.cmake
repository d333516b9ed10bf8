# kt_warnings: the warning set every first-party target carries (STYLE.md §10).
add_library(kt_warnings INTERFACE)
target_compile_options(kt_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wformat=2 -Wvla -Wno-format-nonliteral)
if(KT_WERROR)
  target_compile_options(kt_warnings INTERFACE -Werror)
endif()
