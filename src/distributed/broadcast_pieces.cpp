#include "distributed/broadcast_pieces.hpp"

#include <algorithm>

namespace kvbm {

std::vector<std::size_t> broadcast_pieces(std::size_t total, std::size_t largest, unsigned ramp_steps) {
  largest = std::max<std::size_t>(1, largest);
  ramp_steps = std::min(ramp_steps, 30U);
  std::vector<std::size_t> head;
  std::size_t left = total;
  // Halvings of `largest`, so that the pieces after the ramp are never smaller than its last
  // step; a step is taken while what is left can still hold two more pieces as large as it.
  for (unsigned step = ramp_steps; step > 0; --step) {
    const std::size_t size = largest >> step;
    if (size == 0 || (!head.empty() && size == head.back()) || left < 4 * size) continue;
    head.push_back(size);
    left -= 2 * size;
  }
  std::vector<std::size_t> pieces = head;
  // The middle in equal pieces of at most `largest`.
  const std::size_t middle = (left + largest - 1) / largest;
  for (std::size_t i = 0; i < middle; ++i) pieces.push_back(left / middle + (i < left % middle ? 1 : 0));
  pieces.insert(pieces.end(), head.rbegin(), head.rend());
  return pieces;
}

}  // namespace kvbm
