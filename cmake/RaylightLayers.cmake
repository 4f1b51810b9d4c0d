# One static library per layer of src/, with the layers it may use declared, and the build
# enforcing them: a layer's sources and headers are compiled against an include view that
# holds only its own folder and those of the layers it depends on, so an upward include
# ("server/..." from src/models, "backend/cuda/..." from the CPU backend) is a compile
# error ("No such file or directory"), not a review comment.
#
# The view of target T is <build>/layers/T/, holding `<dir>` -> src/<dir> as symlinks
# (per entry where a folder is split between targets, as src/backend is between the CPU
# backend, the CUDA backend and backend_select). Views propagate like any include
# directory: a target's PUBLIC dependencies hand theirs on, so a layer sees exactly what it
# depends on, directly or through a layer below it. tests/layers/ proves the rule holds.

set(RAYLIGHT_LAYER_VIEWS "${CMAKE_BINARY_DIR}/layers")

# A relative symbolic link, so a build folder inside the tree survives the tree moving.
function(raylight_link target link)
  get_filename_component(dir "${link}" DIRECTORY)
  file(RELATIVE_PATH rel "${dir}" "${target}")
  file(CREATE_LINK "${rel}" "${link}" SYMBOLIC)
endfunction()

# raylight_layer(<target> DIR <folder under src>
#                [ENTRIES <names>...]   only these entries of the folder (default: all)
#                [EXCLUDE <names>...]   all entries but these
#                [SOURCES <files>...]   default: every .cpp/.cu under the view's entries
#                [DEPENDS <targets>...] layers (and libraries) it uses, PUBLIC)
function(raylight_layer target)
  cmake_parse_arguments(L "" "DIR" "ENTRIES;EXCLUDE;SOURCES;DEPENDS" ${ARGN})
  set(src "${CMAKE_SOURCE_DIR}/src/${L_DIR}")
  set(view "${RAYLIGHT_LAYER_VIEWS}/${target}")
  file(REMOVE_RECURSE "${view}")
  get_filename_component(parent "${view}/${L_DIR}" DIRECTORY)
  file(MAKE_DIRECTORY "${parent}")
  set(owned)
  if(NOT L_ENTRIES AND NOT L_EXCLUDE)
    raylight_link("${src}" "${view}/${L_DIR}")  # the whole folder
    set(owned "${src}")
  else()
    file(MAKE_DIRECTORY "${view}/${L_DIR}")
    if(L_ENTRIES)
      set(entries ${L_ENTRIES})
    else()
      file(GLOB entries RELATIVE "${src}" CONFIGURE_DEPENDS "${src}/*")
      list(REMOVE_ITEM entries ${L_EXCLUDE})
    endif()
    foreach(e IN LISTS entries)
      if(NOT EXISTS "${src}/${e}")
        message(FATAL_ERROR "raylight_layer(${target}): src/${L_DIR}/${e} does not exist")
      endif()
      raylight_link("${src}/${e}" "${view}/${L_DIR}/${e}")
      list(APPEND owned "${src}/${e}")
    endforeach()
  endif()
  if(NOT L_SOURCES)
    foreach(o IN LISTS owned)
      if(IS_DIRECTORY "${o}")
        file(GLOB_RECURSE found CONFIGURE_DEPENDS "${o}/*.cpp" "${o}/*.cu")
      else()
        set(found)
        if(o MATCHES "\\.(cpp|cu)$")
          set(found "${o}")
        endif()
      endif()
      list(APPEND L_SOURCES ${found})
    endforeach()
  endif()
  add_library(${target} STATIC ${L_SOURCES})
  target_include_directories(${target} PUBLIC "${view}")
  target_link_libraries(${target} PUBLIC ${L_DEPENDS})
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
endfunction()
