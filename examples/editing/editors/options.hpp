// editlab::editors options declared once. An options struct lists its fields in one place,
//
//   struct FtOptions {
//     double lr = 1e-3;
//     int max_steps = 40;
//     template <class Visit> void fields(Visit&& field) {
//       field("lr", lr, "Adam learning rate");
//       field("max_steps", max_steps, "at most this many steps per apply()");
//     }
//   };
//
// and gets from that list its JSON (options_to_json / options_from_json: a missing key keeps
// its default, an unknown one is an error), `editlab train --set key=value` (set_json_option) and
// the help text `editlab methods` prints (options_help), all agreeing on names and defaults.
#pragma once

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensortape/core/error.hpp"

namespace editlab::editors {

namespace detail {

template <class V>
V parse_value(const std::string& key, const std::string& text) {
  auto bad = [&](const char* kind) { tensortape::fail("editlab", "option '", key, "': '", text, "' is not ", kind); };
  if constexpr (std::is_same_v<V, bool>) {
    if (text != "true" && text != "1" && text != "false" && text != "0") bad("true or false");
    return text == "true" || text == "1";
  } else if constexpr (std::is_same_v<V, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
    std::vector<std::string> out;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');)
      if (!item.empty()) out.push_back(item);
    return out;
  } else {
    static_assert(std::is_arithmetic_v<V>, "an option is a number, a bool, a string or a list of strings");
    std::size_t used = 0;
    V value{};
    try {
      if constexpr (std::is_floating_point_v<V>) {
        value = static_cast<V>(std::stod(text, &used));
      } else if constexpr (std::is_unsigned_v<V>) {
        if (!text.empty() && text[0] == '-') bad("a non-negative integer");
        value = static_cast<V>(std::stoull(text, &used));
      } else {
        value = static_cast<V>(std::stoll(text, &used));
      }
    } catch (const std::exception&) {
      bad(std::is_floating_point_v<V> ? "a number" : "an integer");
    }
    if (used != text.size()) bad(std::is_floating_point_v<V> ? "a number" : "an integer");
    return value;
  }
}

template <class V>
std::string show_value(const V& value) {
  return nlohmann::json(value).dump();
}

}  // namespace detail

template <class O>
nlohmann::json options_to_json(O options) {
  nlohmann::json out = nlohmann::json::object();
  options.fields([&](const char* name, auto& value, const char*) { out[name] = value; });
  return out;
}

template <class O>
O options_from_json(const nlohmann::json& j) {
  O options;
  tensortape::check(j.is_object(), "editlab", "options must be a JSON object, got ", j.dump());
  std::vector<std::string> known;
  options.fields([&](const char* name, auto& value, const char*) {
    known.push_back(name);
    if (!j.contains(name)) return;
    try {
      value = j.at(name).get<std::remove_reference_t<decltype(value)>>();
    } catch (const nlohmann::json::exception&) {
      tensortape::fail("editlab", "option '", name, "': ", j.at(name).dump(), " has the wrong type");
    }
  });
  for (const auto& [key, value] : j.items())
    tensortape::check(std::find(known.begin(), known.end(), key) != known.end(), "editlab", "unknown option '", key, "'");
  return options;
}

// Sets one option of an options JSON from text ("lr", "3e-4"), parsed as the type the option
// has there; an unknown key names the known ones.
inline void set_json_option(nlohmann::json& options, const std::string& key, const std::string& text) {
  if (!options.contains(key)) {
    std::string known;
    for (const auto& [k, v] : options.items()) known += (known.empty() ? "" : ", ") + k;
    tensortape::fail("editlab", "unknown option '", key, "' (known: ", known, ")");
  }
  auto& slot = options[key];
  if (slot.is_boolean()) slot = detail::parse_value<bool>(key, text);
  else if (slot.is_number_unsigned()) slot = detail::parse_value<std::uint64_t>(key, text);
  else if (slot.is_number_integer()) slot = detail::parse_value<std::int64_t>(key, text);
  else if (slot.is_number()) slot = detail::parse_value<double>(key, text);
  else if (slot.is_array()) slot = detail::parse_value<std::vector<std::string>>(key, text);
  else slot = text;
}

// "  name = default   help" lines.
template <class O>
std::string options_help(O options) {
  std::string out;
  options.fields([&](const char* name, auto& value, const char* help) {
    std::string line = "  " + std::string(name) + " = " + detail::show_value(value);
    line.resize(std::max<std::size_t>(line.size() + 2, 34), ' ');
    out += line + help + "\n";
  });
  return out;
}

}  // namespace editlab::editors
