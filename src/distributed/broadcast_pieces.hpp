#pragma once
// How replicated mode's packed broadcast cuts a request into pieces. Packing the first piece and
// unpacking the last overlap nothing; pieces that ramp (start small, double up to the largest
// the staging holds, shrink the same way at the end) make those two short, at the cost of more
// broadcast calls. The pieces in between, which each overlap the packing of the next and the
// unpacking of the last, are as large as the staging allows, since every call costs a fixed time.
#include <cstddef>
#include <vector>

namespace kvbm {

// Piece sizes, in blocks, for `total` blocks, adding up to `total` (none for 0): at most
// `largest` each; the first and last up to `ramp_steps` are halvings of `largest`, down to
// largest >> ramp_steps (one block at the least) at either end.
[[nodiscard]] std::vector<std::size_t> broadcast_pieces(std::size_t total, std::size_t largest, unsigned ramp_steps);

}  // namespace kvbm
