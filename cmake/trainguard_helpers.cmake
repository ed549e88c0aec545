# Shared build helpers: warnings as an INTERFACE target, Torch precompiled headers,
# and tg_add_test() which registers a test with an optional mpirun prefix.

add_library(tg_warnings INTERFACE)
target_compile_options(tg_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter)

# Torch's headers dominate compile time: every Torch-linking target reuses one
# precompiled header built by tg_torch_pch.
add_library(tg_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cc)
target_link_libraries(tg_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_precompile_headers(tg_torch_pch PUBLIC <torch/torch.h>)

function(tg_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM tg_torch_pch)
endfunction()

# Launching ranks: root needs --allow-run-as-root, and more ranks than cores
# need --oversubscribe (the CI machine has 2 cores and tests run 3 ranks).
set(TG_MPIRUN ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe
    --mca btl self,vader,tcp --bind-to none)

# tg_add_test(NAME name COMMAND cmd... [RANKS n] [LABELS l...] [TIMEOUT s])
function(tg_add_test)
  cmake_parse_arguments(T "" "NAME;RANKS;TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(T_RANKS)
    set(cmd ${TG_MPIRUN} -np ${T_RANKS} ${T_COMMAND})
  else()
    set(cmd ${T_COMMAND})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${cmd})
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
    ENVIRONMENT "OMP_NUM_THREADS=1;TG_TEST_BIN=$<TARGET_FILE:trainguard>")
endfunction()
