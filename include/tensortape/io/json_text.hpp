// tensortape::io::parse_json — JSON text from a file, read under the rules every reader of the
// library follows:
//   - no NUL byte (what followed it would pass unread);
//   - nesting at most max_depth deep (a 100k-deep value overflows the stack of any recursive walk
//     over it, dump() in an error message included);
//   - no duplicate key in any object (nlohmann would silently keep one of them);
//   - every failure a tensortape::Error that starts with `where`.
//
//   auto config = tt::io::parse_json(text, "t5 config: 'config.json': ");
//   auto header = tt::io::parse_json(text, "header: ", /*max_depth=*/16, "tensor name");
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tensortape/core/error.hpp"

namespace tensortape::io {

// `top_level_key` names a key of the outermost object in the duplicate-key message.
inline nlohmann::json parse_json(std::string_view text, const std::string& where, int max_depth = 64,
                                 const char* top_level_key = "key") {
  using nlohmann::json;
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw Error(where + "a NUL byte at offset " + std::to_string(nul));
  std::vector<std::set<std::string>> open_objects;  // the keys seen so far in each open object
  std::string problem;
  json parsed;
  try {
    parsed = json::parse(text, [&](int depth, json::parse_event_t event, json& value) {
      if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
        if (depth >= max_depth) {
          problem = "nests deeper than " + std::to_string(max_depth) + " levels";
          throw Error(problem);  // stop reading now, not after the whole value is built
        }
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
      } else if (event == json::parse_event_t::object_end) {
        if (!open_objects.empty()) open_objects.pop_back();
      } else if (event == json::parse_event_t::key && !open_objects.empty() && value.is_string()) {
        const auto& key = value.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second && problem.empty())
          problem = std::string("a duplicate ") + (open_objects.size() == 1 ? top_level_key : "key") + " '" + key + "'";
      }
      return true;
    });
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    throw Error(where + "invalid JSON: " + e.what());
  } catch (const Error&) {
    throw Error(where + problem);
  }
  if (!problem.empty()) throw Error(where + problem);
  return parsed;
}

}  // namespace tensortape::io
