// Surviving a memory-mapped file that is cut short while mapped.
//
// Checkpoints are mapped, not copied (one host copy of a model is a goal). When another
// program truncates a mapped file, reading a page past the new end raises SIGBUS, which
// would kill the process (and with it a server) without a word. A SIGBUS handler checks
// whether the faulting address lies in a registered mapping; if it does, it maps a page of
// zeros over the missing one, marks the mapping as faulted and lets the read finish. Every
// reader of mapped bytes then asks mapping_faulted() before using what it read (the weight
// stores on each weight, every output writer before it commits), so the zeros never reach
// a result: the command fails with an Error naming the file, and a server fails the job and
// keeps serving. Faults at other addresses go to the previous handler (or the default one).
// This works from any thread, which a sigsetjmp guard around each read would not.
#pragma once

#include <cstddef>
#include <string>

namespace raylight {

// Registers [base, base + size) mapped from `path`; returns a slot (or -1 when the registry
// is full: such a mapping is not protected). Installs the SIGBUS handler on first use.
int register_mapping(const void* base, size_t size, const std::string& path);
void unregister_mapping(int slot);
// True once a read in this mapping touched a page past the end of its file.
bool mapping_faulted(int slot);
// The path of the first registered mapping that faulted, or "" when none did.
std::string first_faulted_mapping();

}  // namespace raylight
