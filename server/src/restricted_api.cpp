#include "restricted_api.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "options.h"

namespace llm_server {

namespace {

// tritonserver's names, in ApiCategory's order.
constexpr std::array<const char*, kApiCategories> kCategoryNames = {
    "health", "metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics", "trace",
    "logging"};

std::string allowed_names() {
  std::string names;
  for (const char* name : kCategoryNames) names += std::string(names.empty() ? "" : ", ") + name;
  return names;
}

}  // namespace

void RestrictedApis::add_group(std::string_view flag, std::string_view setting) {
  const std::string where = std::string(flag) + " '" + std::string(setting) + "'";
  const size_t colon = setting.find(':');
  const size_t equals = colon == std::string_view::npos ? std::string_view::npos : setting.find('=', colon);
  if (colon == std::string_view::npos || equals == std::string_view::npos) {
    throw OptionError("invalid value for " + where + ": expected <category>,<category>,...:<key>=<value>");
  }
  std::string key(setting.substr(colon + 1, equals - colon - 1));
  const std::string value(setting.substr(equals + 1));
  if (key.empty() || value.empty()) {
    throw OptionError("invalid value for " + where + ": the header key and the value it must have cannot be empty");
  }
  const bool key_is_token = std::all_of(key.begin(), key.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
  });
  if (!key_is_token) {
    throw OptionError("invalid value for " + where + ": the header key '" + key +
                      "' may hold only letters, digits, '-', '_' and '.'");
  }
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string_view list = setting.substr(0, colon);
  if (list.empty()) throw OptionError("invalid value for " + where + ": no category before ':'");
  for (size_t begin = 0; begin <= list.size();) {
    const size_t comma = std::min(list.find(',', begin), list.size());
    const std::string name(list.substr(begin, comma - begin));
    const auto* found = std::find(kCategoryNames.begin(), kCategoryNames.end(), name);
    if (found == kCategoryNames.end()) {
      throw OptionError("unknown restricted protocol '" + name + "' in " + where + "; allowed: " + allowed_names());
    }
    std::optional<ApiRestriction>& slot = restrictions_[static_cast<size_t>(found - kCategoryNames.begin())];
    if (slot) {
      // tritonserver's wording.
      throw OptionError("protocol '" + name + "' can not be specified in multiple config groups (" + std::string(flag) + ")");
    }
    slot = ApiRestriction{header_prefix_ + key, value};
    begin = comma + 1;
  }
}

bool RestrictedApis::empty() const {
  return std::none_of(restrictions_.begin(), restrictions_.end(), [](const auto& r) { return r.has_value(); });
}

std::string RestrictedApis::describe() const {
  std::map<std::string, std::string> categories_by_header;
  for (size_t c = 0; c < kApiCategories; ++c) {
    if (!restrictions_[c]) continue;
    std::string& names = categories_by_header[restrictions_[c]->header];
    names += std::string(names.empty() ? "" : ", ") + kCategoryNames[c];
  }
  std::string text;
  for (const auto& [header, names] : categories_by_header) {
    text += std::string(text.empty() ? "" : "; ") + names + ": header '" + header + "'";
  }
  return text;
}

std::string restricted_message(std::string_view noun, const ApiRestriction& restriction) {
  return "This " + std::string(noun) + " is restricted, expecting header '" + restriction.header + "'";
}

}  // namespace llm_server
