# KT_SANITIZE: "address,undefined" (dev preset), "thread" (tsan preset) or empty.
set(KT_SANITIZE "" CACHE STRING "Sanitizers to build with (address,undefined | thread)")
if(KT_SANITIZE)
  add_compile_options(-fsanitize=${KT_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${KT_SANITIZE})
endif()
