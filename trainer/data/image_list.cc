// Folder and manifest listings (see image_list.h).
#include "trainer/data/image_list.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>

#include "trainer/core/errors.h"

namespace trainguard {
bool IsJpegName(const std::string& name) {
  const auto dot = name.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg";
}

namespace {

std::string FolderOf(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

RawLabel LabelFromFileName(const std::string& file_name) {
  const auto underscore = file_name.find('_');
  if (underscore == std::string::npos) return RawLabel{};  // unlabelled, e.g. a test image
  return ParseLabelText(file_name.substr(0, underscore));
}

std::vector<ImageEntry> ScanImageFolder(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw DataError(ErrnoMessage("cannot read the image folder " + dir, errno) + "; check --data-dir");
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    if (IsJpegName(e->d_name)) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  if (names.empty()) throw DataError(dir + " holds no .jpg or .jpeg file; check --data-dir");
  std::sort(names.begin(), names.end());
  std::vector<ImageEntry> entries;
  for (const auto& n : names) entries.push_back({dir + "/" + n, LabelFromFileName(n)});
  return entries;
}

std::vector<ImageEntry> ReadManifest(const std::string& csv_path) {
  std::ifstream in(csv_path);
  if (!in) throw DataError(ErrnoMessage("cannot open the manifest " + csv_path, errno) + "; check --manifest");
  const std::string base = FolderOf(csv_path);
  std::vector<ImageEntry> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line == "path,label")) continue;
    const auto comma = line.rfind(',');
    if (comma == std::string::npos || comma == 0) {
      throw DataError(csv_path + ":" + std::to_string(number) + ": expected 'path,label', got '" + line + "'");
    }
    std::string path = line.substr(0, comma);
    if (path[0] != '/') path = base + "/" + path;
    entries.push_back({path, ParseLabelText(line.substr(comma + 1))});
  }
  if (entries.empty()) throw DataError(csv_path + " lists no image; expected 'path,label' lines");
  return entries;
}

}  // namespace trainguard
