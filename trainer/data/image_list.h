// The list of images of a folder dataset, and their labels, without reading any pixels:
//  - a folder in the food-11 layout: the label is the integer before the first "_" of the file
//    name ("3_117.jpg" is class 3); a name without "_" ("0042.jpg") is unlabelled;
//  - a manifest CSV of "path,label" lines (an optional "path,label" header; relative paths are
//    relative to the manifest's folder; an empty label is unlabelled).
// Labels are parsed strictly (ParseLabelText): "-1", "11", "abc", "3.5" stay what they are for
// label validation to judge.
#pragma once

#include <string>
#include <vector>

#include "trainer/core/sample.h"

namespace trainguard {

struct ImageEntry {
  std::string path;
  RawLabel label;
};

// Whether a file name ends in .jpg or .jpeg, in any case.
bool IsJpegName(const std::string& name);

// The label a food-11 file name carries.
RawLabel LabelFromFileName(const std::string& file_name);

// The .jpg/.jpeg files of `dir` (not recursive), sorted by name. Throws DataError when the
// folder cannot be read or holds no JPEG.
std::vector<ImageEntry> ScanImageFolder(const std::string& dir);

// The entries of a manifest. Throws DataError naming the file and line of a malformed line.
std::vector<ImageEntry> ReadManifest(const std::string& csv_path);

}  // namespace trainguard
