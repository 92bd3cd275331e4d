# Warnings are errors on twistlet's own code only; consumers' flags are left alone.
function(twistlet_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()
