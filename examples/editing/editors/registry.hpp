// editlab::editors registry — every editor editlab can train and evaluate, by its --method
// name. The command line, `editlab cost` and scripts/results (through `editlab methods`) ask
// it; adding an editor is its header and one entry in methods().
//
//   const Method& m = method("mend");
//   nlohmann::json options = m.default_options();       // keys as `editlab methods` lists them
//   set_json_option(options, "steps", "2000");
//   auto editor = m.make(base, bench, options);          // std::unique_ptr<RunEditor>
//   auto loaded = load_editor("runs/mend-qa", "mend", base, bench);   // options and weights saved there
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "editors/enn.hpp"
#include "editors/ft.hpp"
#include "editors/mend.hpp"
#include "editors/seprog.hpp"
#include "editors/slag.hpp"
#include "editors/serac.hpp"

namespace editlab::editors {

struct Method {
  std::string name;
  std::string summary;
  bool trains = true;          // false: no training phase (FT edits at apply time)
  std::string options_file;    // what save() writes in the run folder: {"editor": name, "options": {...}}
  std::function<nlohmann::json()> default_options;
  std::function<std::unique_ptr<RunEditor>(Seq2Seq& base, const Benchmark& bench, const nlohmann::json& options)> make;
};

namespace detail {

template <class E, class O>
Method options_method(std::string name, std::string summary, bool trains, std::string file, O defaults) {
  return {std::move(name), std::move(summary), trains, std::move(file), [defaults] { return options_to_json(defaults); },
          [](Seq2Seq& base, const Benchmark& bench, const nlohmann::json& options) -> std::unique_ptr<RunEditor> {
            return std::make_unique<E>(base, bench, options_from_json<O>(options));
          }};
}

inline Method seprog_method(SeprogVariant variant, std::string summary) {
  SeprogOptions defaults;
  defaults.variant = variant;
  return {variant_name(variant), std::move(summary), true, "seprog.json", [defaults] { return defaults.to_json(); },
          [variant](Seq2Seq& base, const Benchmark& bench, const nlohmann::json& options) -> std::unique_ptr<RunEditor> {
            auto o = SeprogOptions::from_json(options);
            tt::check(o.variant == variant, "editlab", "options of ", variant_name(o.variant), " given to ", variant_name(variant));
            return std::make_unique<Seprog>(base, bench.labels, o);
          }};
}

}  // namespace detail

inline const std::vector<Method>& methods() {
  static const std::vector<Method> all = {
      detail::seprog_method(SeprogVariant::seprog, "SEPROG: a frozen base edited by generated prefix prompts"),
      detail::seprog_method(SeprogVariant::finetune, "SEPROG's ablation with the base model trained too"),
      detail::seprog_method(SeprogVariant::noclassifier, "SEPROG's ablation without the scope classifier (prefix always)"),
      detail::seprog_method(SeprogVariant::noselect, "SEPROG trained as usual, the prefix always given at inference"),
      detail::options_method<Ft, FtOptions>("ft", "fine-tunes the edited matrices on the descriptors at apply time", false,
                                            "ft.json", FtOptions{}),
      detail::options_method<Ft, FtOptions>("ft-kl", "FT with a KL locality term on unrelated training inputs", false,
                                            "ft.json", FtOptions{}.with_locality()),
      detail::options_method<Enn, EnnOptions>("enn", "editable training: learned SGD steps on the edited matrices, "
                                              "meta-trained through the step", true, "enn.json", EnnOptions{}),
      detail::options_method<Mend, MendOptions>("mend", "editor networks mapping each edited matrix's gradient factors "
                                                "to an update", true, "mend.json", MendOptions{}),
      detail::options_method<Slag, SlagOptions>("slag", "a learned optimizer: conditioned heads reshape each edited matrix's "
                                                "gradient, up to 5 steps", true, "slag.json", SlagOptions{}),
      detail::options_method<Serac, SeracOptions>("serac", "an edit memory, a scope classifier and a counterfactual model; "
                                                  "the base never changes", true, "serac.json", SeracOptions{}),
  };
  return all;
}

inline std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const auto& m : methods()) out.push_back(m.name);
  return out;
}

inline const Method& method(const std::string& name) {
  for (const auto& m : methods())
    if (m.name == name) return m;
  std::string known;
  for (const auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
  tt::fail("editlab", "unknown method '", name, "' (known: ", known, ")");
}

// The editor a run folder holds: made with the options it saved, its weights loaded.
inline std::unique_ptr<RunEditor> load_editor(const std::filesystem::path& dir, const std::string& name, Seq2Seq& base,
                                              const Benchmark& bench) {
  const auto& m = method(name);
  const auto file = dir / m.options_file;
  const auto saved = train::read_json(file);
  tt::check(saved.value("editor", "") == name || (m.options_file == "seprog.json" && saved.value("editor", "") == "seprog"),
            "editlab", "'", file.string(), "' does not describe a ", name, " editor");
  auto editor = m.make(base, bench, saved.at("options"));
  editor->load_weights(dir);
  return editor;
}

}  // namespace editlab::editors
