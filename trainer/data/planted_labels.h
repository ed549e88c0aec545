// A dataset whose labels are replaced at chosen samples: fault injection for tests and
// demonstrations (--plant-label INDEX=LABEL), e.g. a label of 11 with 11 classes, or -1.
#pragma once

#include <map>
#include <memory>

#include "trainer/data/dataset.h"

namespace trainguard {

// Wraps `inner`; labels in `planted` (index -> label) replace the inner ones.
std::unique_ptr<Dataset> WithPlantedLabels(std::unique_ptr<Dataset> inner, std::map<int64_t, RawLabel> planted);

}  // namespace trainguard
