// editlab::eval report — result rows as JSON lines, and the Markdown tables made from them:
//
//   append_jsonl("results.jsonl", rows);                  // one JSON object per line, appended
//   auto all = read_jsonl("results.jsonl");               // errors name the file and the line
//   std::cout << table2_markdown(all);                    // like the SEPROG paper's Table 2
//   std::cout << batch_size_markdown(all);                // every (method, benchmark, K) row
//   std::cout << results_markdown(all);                   // both, under headings
//   std::cout << side_by_side_markdown(all);              // methods as columns, ES / DD per K
//
// A line: {"method":"seprog","benchmark":"qa","split":"test","batch_size":64,"draws":5,"seed":1,
//          "es":0.93,"es_se":0.01,"es_all":0.94,"es0":0.02,"dd":0.02,"dd_se":0.004,"acc_drop":0.01,
//          "dd_seen":0.01,"dd_seen_se":0.003,"hard_dd":0.05,"hard_dd_se":0.01,
//          "in_examples":412,"needed_examples":405,"out_examples":380,"edit_ms":812.5,"seconds":41.3,
//          "editor_options":{"lr":0.0003,"gate_threshold":0.5,...}}
// Everything after acc_drop is optional (older files lack it); a metric nothing was measured on
// is null; split defaults to test.
// A results file is a log: when a (method, benchmark, split, batch_size, seed) appears more than
// once, the tables use its last line (a rerun replaces the earlier result). Rows of several
// editor training seeds are averaged in the tables, which show their spread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/harness.hpp"
#include "tensortape/core/error.hpp"
#include "tensortape/io/json_text.hpp"

namespace editlab::eval {

namespace detail {

// Errors read "field 'es': missing".
inline std::string name(const char* field) { return std::string("field '") + field + "'"; }

inline nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

// A required number (null reads as NaN: "not measured").
inline double read_number(const nlohmann::json& j, const char* field) {
  tt::check(j.contains(field), name(field), "missing");
  const auto& v = j.at(field);
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  tt::check(v.is_number(), name(field), "must be a number, got ", v.dump());
  return v.get<double>();
}

inline std::optional<double> read_optional(const nlohmann::json& j, const char* field) {
  if (!j.contains(field)) return std::nullopt;
  if (j.at(field).is_null()) return std::numeric_limits<double>::quiet_NaN();
  return read_number(j, field);
}

inline int read_count(const nlohmann::json& j, const char* field) {
  tt::check(j.contains(field), name(field), "missing");
  const auto& v = j.at(field);
  tt::check(v.is_number_integer() && v.get<long long>() > 0, name(field), "must be a positive integer, got ", v.dump());
  return v.get<int>();
}

inline std::string read_text(const nlohmann::json& j, const char* field) {
  tt::check(j.contains(field), name(field), "missing");
  const auto& v = j.at(field);
  tt::check(v.is_string() && !v.get<std::string>().empty(), name(field), "must be a non-empty string, got ", v.dump());
  return v.get<std::string>();
}

}  // namespace detail

// ---- JSON lines ----------------------------------------------------------------------------

inline nlohmann::json to_json(const ResultRow& r) {
  nlohmann::json j;
  j["method"] = r.method;
  j["benchmark"] = r.benchmark;
  j["split"] = r.split;
  j["batch_size"] = r.batch_size;
  j["draws"] = r.draws;
  if (r.seed) j["seed"] = *r.seed;
  j["es"] = detail::number_or_null(r.es);
  j["es_se"] = detail::number_or_null(r.es_se);
  j["es_all"] = detail::number_or_null(r.es_all);
  j["es0"] = detail::number_or_null(r.es0);
  j["dd"] = detail::number_or_null(r.dd);
  j["dd_se"] = detail::number_or_null(r.dd_se);
  j["acc_drop"] = detail::number_or_null(r.acc_drop);
  if (r.dd_seen) j["dd_seen"] = detail::number_or_null(*r.dd_seen);
  if (r.dd_seen_se) j["dd_seen_se"] = detail::number_or_null(*r.dd_seen_se);
  if (r.hard_dd) j["hard_dd"] = detail::number_or_null(*r.hard_dd);
  if (r.hard_dd_se) j["hard_dd_se"] = detail::number_or_null(*r.hard_dd_se);
  j["in_examples"] = r.in_examples;
  j["needed_examples"] = r.needed_examples;
  j["out_examples"] = r.out_examples;
  j["target_examples"] = r.target_examples;
  if (r.edit_ms) j["edit_ms"] = detail::number_or_null(*r.edit_ms);
  if (r.es_descriptors) j["es_descriptors"] = detail::number_or_null(*r.es_descriptors);
  if (r.es_known) j["es_known"] = detail::number_or_null(*r.es_known);
  if (r.known_examples) j["known_examples"] = *r.known_examples;
  if (r.seconds) j["seconds"] = detail::number_or_null(*r.seconds);
  if (!r.editor_options.is_null()) j["editor_options"] = r.editor_options;
  return j;
}

// Throws tensortape::Error naming the field at fault. Unknown fields are ignored, so a newer
// writer's extra fields do not break an older reader.
inline ResultRow row_from_json(const nlohmann::json& j) {
  tt::check(j.is_object(), "result row", "expected a JSON object, got ", j.dump());
  ResultRow r;
  r.method = detail::read_text(j, "method");
  r.benchmark = detail::read_text(j, "benchmark");
  if (j.contains("split")) r.split = detail::read_text(j, "split");
  r.batch_size = detail::read_count(j, "batch_size");
  r.draws = detail::read_count(j, "draws");
  if (j.contains("seed")) {
    tt::check(j.at("seed").is_number_unsigned(), detail::name("seed"), "must be a non-negative integer, got ", j.at("seed").dump());
    r.seed = j.at("seed").get<std::uint64_t>();
  }
  r.es = detail::read_number(j, "es");
  r.es_se = detail::read_number(j, "es_se");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  r.es_all = detail::read_optional(j, "es_all").value_or(nan);
  r.es0 = detail::read_optional(j, "es0").value_or(nan);
  r.dd = detail::read_number(j, "dd");
  r.dd_se = detail::read_number(j, "dd_se");
  r.acc_drop = detail::read_number(j, "acc_drop");
  r.dd_seen = detail::read_optional(j, "dd_seen");
  r.dd_seen_se = detail::read_optional(j, "dd_seen_se");
  for (auto [field, count] : {std::pair{"in_examples", &r.in_examples}, {"needed_examples", &r.needed_examples},
                              {"out_examples", &r.out_examples}, {"target_examples", &r.target_examples}})
    if (j.contains(field)) {
      tt::check(j.at(field).is_number_integer() && j.at(field).get<long long>() >= 0, detail::name(field),
                "must be a non-negative integer, got ", j.at(field).dump());
      *count = j.at(field).get<int>();
    }
  r.hard_dd = detail::read_optional(j, "hard_dd");
  r.hard_dd_se = detail::read_optional(j, "hard_dd_se");
  r.edit_ms = detail::read_optional(j, "edit_ms");
  r.es_descriptors = detail::read_optional(j, "es_descriptors");
  r.es_known = detail::read_optional(j, "es_known");
  if (j.contains("known_examples")) r.known_examples = detail::read_count(j, "known_examples");
  r.seconds = detail::read_optional(j, "seconds");
  if (j.contains("editor_options")) {
    tt::check(j.at("editor_options").is_object(), detail::name("editor_options"), "must be an object, got ", j.at("editor_options").dump());
    r.editor_options = j.at("editor_options");
  }
  return r;
}

// Appends one line, write(row) as JSON, per row (creating the file and its folder), so several
// runs can share one file: read_json_lines' counterpart.
template <class Row, class Write>
void append_json_lines(const std::filesystem::path& path, const std::vector<Row>& rows, Write&& write) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::app);
  tt::check(static_cast<bool>(out), "editlab::eval", "cannot open ", path.string(), " for appending");
  for (const auto& r : rows) out << nlohmann::json(write(r)).dump() << '\n';
  out.flush();
  tt::check(static_cast<bool>(out), "editlab::eval", "writing ", path.string(), " failed");
}

// Appends the rows to a results file (append_json_lines).
inline void append_jsonl(const std::filesystem::path& path, const std::vector<ResultRow>& rows) {
  append_json_lines(path, rows, [](const ResultRow& r) { return to_json(r); });
}

// Replaces the file with exactly these rows (written to a temporary file, then renamed).
inline void write_jsonl(const std::filesystem::path& path, const std::vector<ResultRow>& rows) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    tt::check(static_cast<bool>(out), "editlab::eval", "cannot open ", temporary.string(), " for writing");
    for (const auto& r : rows) out << to_json(r).dump() << '\n';
    out.flush();
    tt::check(static_cast<bool>(out), "editlab::eval", "writing ", temporary.string(), " failed");
  }
  std::filesystem::rename(temporary, path);
}

// parse(json) of every line of a JSON-lines file (`what` names it in errors), in file order.
// Blank lines are skipped; a line that is not JSON, or that parse rejects, is an error naming
// the file and the line: "results.jsonl:7: field 'es' is missing".
template <class Parse>
auto read_json_lines(const std::filesystem::path& path, const char* what, Parse&& parse) {
  std::ifstream in(path);
  tt::check(static_cast<bool>(in), "editlab::eval", "cannot open ", what, " ", path.string());
  std::vector<decltype(parse(nlohmann::json()))> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    const nlohmann::json j = tt::io::parse_json(line, where + ": ");  // NUL bytes, depth, duplicate keys
    try {
      rows.push_back(parse(j));
    } catch (const std::exception& e) {  // tt::Error, or nlohmann's on a missing or mistyped field
      tt::fail(where, e.what());
    }
  }
  return rows;
}

// Every row of a results file (read_json_lines).
inline std::vector<ResultRow> read_jsonl(const std::filesystem::path& path) {
  return read_json_lines(path, "results file", row_from_json);
}

// ---- Markdown tables -----------------------------------------------------------------------

// The last row of each (method, benchmark, split, batch_size, seed), in order of first appearance.
inline std::vector<ResultRow> latest_rows(const std::vector<ResultRow>& rows) {
  std::vector<ResultRow> out;
  std::map<std::tuple<std::string, std::string, std::string, int, std::uint64_t, bool>, std::size_t> where;
  for (const auto& r : rows) {
    const auto key = std::make_tuple(r.method, r.benchmark, r.split, r.batch_size, r.seed.value_or(0), r.seed.has_value());
    if (auto it = where.find(key); it != where.end()) out[it->second] = r;
    else {
      where.emplace(key, out.size());
      out.push_back(r);
    }
  }
  return out;
}

namespace detail {

// Names in order of first appearance.
template <class Get>
std::vector<std::string> ordered(const std::vector<ResultRow>& rows, Get get) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    if (std::find(out.begin(), out.end(), get(r)) == out.end()) out.push_back(get(r));
  return out;
}

inline std::string fixed(double v, int digits) {
  if (std::isnan(v)) return "–";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, v);
  return buffer;
}

// "0.93 ± 0.01"; "–" when not measured.
inline std::string mean_pm(double mean, double se) {
  if (std::isnan(mean)) return "–";
  return fixed(mean, 2) + " ± " + fixed(std::isnan(se) ? 0.0 : se, 2);
}

// How the estimates averaged by average() relate, which sets the standard error of their mean.
enum class Errors {
  independent,  // from separate edits (benchmarks): sqrt(sum se^2) / n
  shared,       // from the same edits (a benchmark's batch sizes): the mean se, an upper bound on
                // the mean's standard error whatever their correlation
  seeds,        // training seeds evaluated on the same edit draws: the draws' error is shared (the
                // mean se) and the seeds' own scatter adds: sqrt(mean_se^2 + s^2 / n), s^2 the
                // sample variance of the seeds' means
};

// The mean of several estimates (mean, se) and its standard error; NaN estimates are left out.
inline std::pair<double, double> average(const std::vector<std::pair<double, double>>& estimates, Errors errors) {
  std::vector<double> means, ses;
  for (auto [mean, se] : estimates) {
    if (std::isnan(mean)) continue;
    means.push_back(mean);
    ses.push_back(std::isnan(se) ? 0.0 : se);
  }
  const auto n = static_cast<double>(means.size());
  if (means.empty()) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  double sum = 0, sum_se = 0, sum_squares = 0;
  for (std::size_t i = 0; i < means.size(); ++i) sum += means[i], sum_se += ses[i], sum_squares += ses[i] * ses[i];
  const double mean = sum / n, mean_se = sum_se / n;
  switch (errors) {
    case Errors::independent: return {mean, std::sqrt(sum_squares) / n};
    case Errors::shared: return {mean, mean_se};
    case Errors::seeds: {
      double scatter = 0;  // s^2
      for (double m : means) scatter += (m - mean) * (m - mean);
      scatter = means.size() > 1 ? scatter / (n - 1) : 0.0;
      return {mean, std::sqrt(mean_se * mean_se + scatter / n)};
    }
  }
  return {mean, mean_se};
}

inline std::string join_sizes(const std::set<int>& sizes) {
  std::string out;
  for (int k : sizes) out += (out.empty() ? "" : ", ") + std::to_string(k);
  return "{" + out + "}";
}

// "qa", or "qa (validation)" for rows not measured on the test split.
inline std::string benchmark_label(const ResultRow& r) { return r.split == "test" ? r.benchmark : r.benchmark + " (" + r.split + ")"; }
// The mean of values, NaN ones left out.
inline double mean_of(const std::vector<double>& values) {
  double sum = 0;
  int n = 0;
  for (double v : values)
    if (!std::isnan(v)) sum += v, ++n;
  return n ? sum / n : std::numeric_limits<double>::quiet_NaN();
}
// A metric's value: itself, or for an optional one, its value (`missing` when absent).
inline double value(double v, double = 0.0) { return v; }
inline double value(const std::optional<double>& v, double missing = std::numeric_limits<double>::quiet_NaN()) {
  return v.value_or(missing);
}
inline double spread_of(const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (!std::isnan(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  return hi >= lo ? hi - lo : std::numeric_limits<double>::quiet_NaN();
}
}  // namespace detail

// One row per (method, benchmark, split, batch size), averaged over the editor training seeds
// present: the mean of each rate, its standard error with the seeds' scatter in it
// (detail::Errors::seeds: every seed reads the same edit draws), and the seeds' spread (largest
// minus smallest ES and DD).
struct SeedMerged {
  ResultRow row;
  int seeds = 1;
  double es_spread = 0, dd_spread = 0;
  std::set<std::string> differing_options;  // editor options (the seed aside) whose values differ between the seeds' rows
};

inline std::vector<SeedMerged> merge_seeds(const std::vector<ResultRow>& all_rows) {
  const auto rows = latest_rows(all_rows);
  std::vector<SeedMerged> out;
  std::map<std::tuple<std::string, std::string, std::string, int>, std::vector<const ResultRow*>> groups;
  std::vector<std::tuple<std::string, std::string, std::string, int>> order;
  for (const auto& r : rows) {
    const auto key = std::make_tuple(r.method, r.benchmark, r.split, r.batch_size);
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&r);
  }
  for (const auto& key : order) {
    const auto& group = groups[key];
    SeedMerged m;
    m.row = *group.front();
    m.seeds = static_cast<int>(group.size());
    // A metric's mean over the seeds with its combined SE; members are pointers to ResultRow's.
    auto combine = [&](auto mean, auto se, auto& out_mean, auto& out_se) {
      std::vector<std::pair<double, double>> estimates;
      for (const auto* r : group) estimates.emplace_back(detail::value(r->*mean), detail::value(r->*se, 0.0));
      std::tie(out_mean, out_se) = detail::average(estimates, detail::Errors::seeds);
    };
    auto values = [&](auto get) {
      std::vector<double> v;
      for (const auto* r : group) v.push_back(get(*r));
      return v;
    };
    combine(&ResultRow::es, &ResultRow::es_se, m.row.es, m.row.es_se);
    combine(&ResultRow::dd, &ResultRow::dd_se, m.row.dd, m.row.dd_se);
    if (m.row.hard_dd) combine(&ResultRow::hard_dd, &ResultRow::hard_dd_se, m.row.hard_dd, m.row.hard_dd_se);
    if (m.row.dd_seen) combine(&ResultRow::dd_seen, &ResultRow::dd_seen_se, m.row.dd_seen, m.row.dd_seen_se);
    m.row.es_all = detail::mean_of(values([](const ResultRow& r) { return r.es_all; }));
    m.row.es0 = detail::mean_of(values([](const ResultRow& r) { return r.es0; }));
    if (m.row.es_descriptors)
      m.row.es_descriptors = detail::mean_of(values([](const ResultRow& r) { return detail::value(r.es_descriptors); }));
    if (m.row.es_known) m.row.es_known = detail::mean_of(values([](const ResultRow& r) { return detail::value(r.es_known); }));
    m.row.known_examples.reset();  // a count per run, not per mean
    m.row.acc_drop = detail::mean_of(values([](const ResultRow& r) { return r.acc_drop; }));
    m.es_spread = detail::spread_of(values([](const ResultRow& r) { return r.es; }));
    m.dd_spread = detail::spread_of(values([](const ResultRow& r) { return r.dd; }));
    // Each seed's options against the first seed's; rows written before rows recorded options
    // have none to compare.
    const auto note_differences = [&](const nlohmann::json& a, const nlohmann::json& b) {
      for (const auto& [name, value] : a.items())
        if (name != "seed" && b.value(name, nlohmann::json()) != value) m.differing_options.insert(name);
    };
    const ResultRow* first = nullptr;
    for (const auto* r : group) {
      if (!r->editor_options.is_object()) continue;
      if (!first) first = r;
      note_differences(first->editor_options, r->editor_options);
      note_differences(r->editor_options, first->editor_options);
    }
    out.push_back(m);
  }
  return out;
}


// The paper's Table 2: a row per method; an "Avg." column group, then one per benchmark, each
// with ES (edit-needed examples), ES0 (the unedited base model's ES on all the in-scope examples)
// and DD (unseen out-scope); every cell the mean over the batch sizes present, ± its standard
// error. Avg. is the mean over benchmarks, shown only for a method measured on every benchmark of
// the table. A cell missing some of the table's batch sizes (not run, or NaN) is marked with *.
inline std::string table2_markdown(const std::vector<ResultRow>& all_rows) {
  const auto merged = merge_seeds(all_rows);
  if (merged.empty()) return "(no results)\n";
  std::vector<ResultRow> rows;
  for (const auto& m : merged) rows.push_back(m.row);
  const auto methods = detail::ordered(rows, [](const ResultRow& r) { return r.method; });
  const auto benchmarks = detail::ordered(rows, detail::benchmark_label);
  std::set<int> all_sizes;
  for (const auto& r : rows) all_sizes.insert(r.batch_size);

  std::ostringstream out;
  out << "| Method | Avg. ES | Avg. DD |";
  for (const auto& b : benchmarks) out << ' ' << b << " ES | ES0 | DD |";
  out << "\n|---|---|---|";
  for (std::size_t i = 0; i < benchmarks.size(); ++i) out << "---|---|---|";
  out << '\n';
  bool marked = false;
  std::set<int> seed_counts;
  for (const auto& m : merged) seed_counts.insert(m.seeds);
  for (const auto& m : methods) {
    std::vector<std::pair<double, double>> es_per_benchmark, dd_per_benchmark;
    std::ostringstream cells;
    bool complete = true;
    for (const auto& b : benchmarks) {
      std::vector<std::pair<double, double>> es, dd;
      std::vector<double> es0;
      std::set<int> sizes, es_sizes, dd_sizes;  // run, and measured (not NaN) per metric
      for (const auto& r : rows)
        if (r.method == m && detail::benchmark_label(r) == b) {
          es.emplace_back(r.es, r.es_se);
          dd.emplace_back(r.dd, r.dd_se);
          es0.push_back(r.es0);
          sizes.insert(r.batch_size);
          if (!std::isnan(r.es)) es_sizes.insert(r.batch_size);
          if (!std::isnan(r.dd)) dd_sizes.insert(r.batch_size);
        }
      if (sizes.empty()) {
        complete = false;
        cells << " – | – | – |";
        continue;
      }
      const auto e = detail::average(es, detail::Errors::shared), d = detail::average(dd, detail::Errors::shared);
      const std::string es_mark = es_sizes.empty() || es_sizes == all_sizes ? "" : "*";
      const std::string dd_mark = dd_sizes.empty() || dd_sizes == all_sizes ? "" : "*";
      marked = marked || !es_mark.empty() || !dd_mark.empty();
      cells << ' ' << detail::mean_pm(e.first, e.second) << es_mark << " | " << detail::fixed(detail::mean_of(es0), 2) << " | "
            << detail::mean_pm(d.first, d.second) << dd_mark << " |";
      es_per_benchmark.push_back(e);
      dd_per_benchmark.push_back(d);
    }
    out << "| " << m << " | ";
    if (complete) {
      const auto e = detail::average(es_per_benchmark, detail::Errors::independent), d = detail::average(dd_per_benchmark, detail::Errors::independent);
      out << detail::mean_pm(e.first, e.second) << " | " << detail::mean_pm(d.first, d.second) << " |";
    } else {
      out << "– | – |";
    }
    out << cells.str() << '\n';
  }
  out << "\nES ↑ on the in-scope examples whose new label the unedited base model does not already give; ES0: the"
         " unedited base model's ES on all the in-scope examples. DD ↓ on out-scope inputs no editor trained on,"
         " against the base model's own predictions. Each cell: mean over edit batch sizes "
      << detail::join_sizes(all_sizes) << " ± standard error (bootstrap over edits and out-scope subjects; over batch sizes, which read the same edits,"
         " the mean of theirs, an upper bound)";
  if (*seed_counts.rbegin() > 1)
    out << "; rows with several editor training seeds average them, the seeds' scatter added to the error (per-K table: their spread)";
  out << '.';
  if (marked)
    out << " * mean over fewer batch sizes than the table (not run, or nothing to measure at some).";
  out << '\n';
  return out.str();
}

// One row per (benchmark, method, batch size): ES, ES over all in-scope examples, ES0, ES on the
// descriptors themselves, DD
// (unseen and seen), accuracy drop, hard DD, the examples behind the cell, edit time.
inline std::string batch_size_markdown(const std::vector<ResultRow>& all_rows) {
  auto merged = merge_seeds(all_rows);
  if (merged.empty()) return "(no results)\n";
  std::vector<ResultRow> plain;
  for (const auto& m : merged) plain.push_back(m.row);
  const auto methods = detail::ordered(plain, [](const ResultRow& r) { return r.method; });
  const auto benchmarks = detail::ordered(plain, detail::benchmark_label);
  auto rank = [](const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) - names.begin();
  };
  std::stable_sort(merged.begin(), merged.end(), [&](const SeedMerged& a, const SeedMerged& b) {
    return std::make_tuple(rank(benchmarks, detail::benchmark_label(a.row)), rank(methods, a.row.method), a.row.batch_size) <
           std::make_tuple(rank(benchmarks, detail::benchmark_label(b.row)), rank(methods, b.row.method), b.row.batch_size);
  });
  const bool any_hard = std::any_of(plain.begin(), plain.end(), [](const ResultRow& r) { return r.hard_dd.has_value(); });
  const bool any_seen = std::any_of(plain.begin(), plain.end(), [](const ResultRow& r) { return r.dd_seen.has_value(); });
  const bool any_described =
      std::any_of(plain.begin(), plain.end(), [](const ResultRow& r) { return r.es_descriptors.has_value(); });
  std::ostringstream out;
  out << "| Benchmark | Method | K | Seeds | Draws | In / out examples | ES | ES all | ES0 |" << (any_described ? " ES desc. |" : "")
      << " DD |" << (any_seen ? " DD seen |" : "") << " Acc. drop |" << (any_hard ? " Hard DD |" : "")
      << " ms per draw |\n|---|---|---|---|---|---|---|---|---|" << (any_described ? "---|" : "") << "---|"
      << (any_seen ? "---|" : "") << "---|" << (any_hard ? "---|" : "") << "---|\n";
  for (const auto& m : merged) {
    const ResultRow& r = m.row;
    auto with_spread = [&](double mean, double se, double spread) {
      std::string cell = detail::mean_pm(mean, se);
      if (m.seeds > 1 && !std::isnan(spread)) cell += " (spread " + detail::fixed(spread, 2) + ")";
      return cell;
    };
    out << "| " << detail::benchmark_label(r) << " | " << r.method << " | " << r.batch_size << " | " << m.seeds << " | " << r.draws
        << " | " << r.needed_examples << " / " << r.out_examples
        << (r.needed_examples < r.target_examples || r.out_examples < r.target_examples ? " †" : "") << " | "
        << with_spread(r.es, r.es_se, m.es_spread) << " | "
        << detail::fixed(r.es_all, 2) << " | " << detail::fixed(r.es0, 2) << " |";
    if (any_described) out << ' ' << (r.es_descriptors ? detail::fixed(*r.es_descriptors, 2) : std::string("–")) << " |";
    out << ' ' << with_spread(r.dd, r.dd_se, m.dd_spread) << " |";
    if (any_seen) out << ' ' << (r.dd_seen ? detail::mean_pm(*r.dd_seen, r.dd_seen_se.value_or(0.0)) : std::string("–")) << " |";
    out << ' ' << detail::fixed(r.acc_drop, 2) << " |";
    if (any_hard)
      out << ' ' << (r.hard_dd ? detail::mean_pm(*r.hard_dd, r.hard_dd_se.value_or(0.0)) : std::string("–")) << " |";
    out << ' ' << (r.edit_ms ? detail::fixed(*r.edit_ms, 1) : std::string("–")) << " |\n";
  }
  out << "\nIn / out examples: the distinct edit-needed in-scope and unseen out-scope examples behind the row"
         " (with several seeds, the first seed's); † marks a row whose split holds fewer than the harness's target"
         " (--min-examples, 300 by default).\n";
  // (benchmark, method) -> the options its averaged seeds disagree on, in table order.
  std::vector<std::pair<std::string, std::set<std::string>>> mixed;
  for (const auto& m : merged) {
    if (m.differing_options.empty()) continue;
    const std::string cell = detail::benchmark_label(m.row) + " / " + m.row.method;
    if (mixed.empty() || mixed.back().first != cell) mixed.push_back({cell, {}});
    mixed.back().second.insert(m.differing_options.begin(), m.differing_options.end());
  }
  if (!mixed.empty()) {
    out << "\nAveraged over seeds whose editor options differ (the seed aside):";
    for (const auto& [cell, names] : mixed) {
      out << ' ' << cell << " (";
      for (auto it = names.begin(); it != names.end(); ++it) out << (it == names.begin() ? "" : ", ") << *it;
      out << ')' << (&cell == &mixed.back().first ? "." : ";");
    }
    out << '\n';
  }
  return out.str();
}

// Methods side by side: a row per (benchmark, batch size), a column per method holding
// "ES / DD" (seeds averaged); "–" where a method has no row for that cell.
inline std::string side_by_side_markdown(const std::vector<ResultRow>& all_rows) {
  const auto merged = merge_seeds(all_rows);
  std::vector<std::string> methods, benchmarks;  // in order of first appearance
  std::map<std::pair<std::size_t, int>, std::map<std::string, const ResultRow*>> cells;  // (benchmark index, K)
  const auto index_of = [](std::vector<std::string>& names, const std::string& name) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) return static_cast<std::size_t>(it - names.begin());
    names.push_back(name);
    return names.size() - 1;
  };
  for (const auto& m : merged) {
    index_of(methods, m.row.method);
    cells[{index_of(benchmarks, detail::benchmark_label(m.row)), m.row.batch_size}][m.row.method] = &m.row;
  }
  std::ostringstream out;
  out << "| Benchmark | K |";
  for (const auto& m : methods) out << ' ' << m << " ES / DD |";
  out << "\n|---|---|";
  for (std::size_t i = 0; i < methods.size(); ++i) out << "---|";
  out << '\n';
  for (const auto& [cell, by_method] : cells) {
    out << "| " << benchmarks[cell.first] << " | " << cell.second << " |";
    for (const auto& m : methods) {
      const auto it = by_method.find(m);
      out << ' '
          << (it == by_method.end() ? std::string("–")
                                    : detail::fixed(it->second->es, 2) + " / " + detail::fixed(it->second->dd, 2))
          << " |";
    }
    out << '\n';
  }
  return out.str();
}

// What `editlab table` prints: both tables under headings.
inline std::string results_markdown(const std::vector<ResultRow>& rows) {
  return "### ES and DD, mean over edit batch sizes (layout of the SEPROG paper's Table 2)\n\n" +
         table2_markdown(rows) + "\n### Per edit batch size\n\n" + batch_size_markdown(rows);
}

}  // namespace editlab::eval
