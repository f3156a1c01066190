// A base model small enough to pretrain inside a test in about a second: a world of a dozen
// people and a one-block T5 of width 16. Tests set steps, batch size and the rest they need;
// tiny_qa_base() is one made once per test process for the editor tests.
#pragma once

#include <filesystem>
#include <string>

#include "pretrain/pretrain.hpp"
#include "scratch.hpp"
#include "world/benchmarks.hpp"

inline editlab::pretrain::PretrainOptions tiny_pretrain_options(const std::filesystem::path& out) {
  editlab::pretrain::PretrainOptions o;
  o.world.people = 12;
  o.world.cities = 4;
  o.world.countries = 3;
  o.world.organisations = 4;
  o.world.universities = 3;
  o.world.languages = 3;
  o.world.taxonomy_branching = {2, 2};
  o.world.species_per_leaf_class = 3;
  o.out = out;
  o.vocab_size = 150;
  o.d_model = 16;
  o.d_ff = 32;
  o.num_heads = 2;
  o.num_layers = 1;
  o.num_decoder_layers = 1;
  o.batch_size = 8;
  o.warmup_steps = 2;
  o.measure_quality = false;
  o.quiet = true;
  return o;
}

// A tiny base model pretrained once per test process (200 steps at lr 3e-3) into a scratch
// folder named `name`, with its world's qa benchmark: what the editor tests edit.
struct TinyQaBase {
  std::filesystem::path dir;
  editlab::world::Benchmark qa;
};

inline const TinyQaBase& tiny_qa_base(const std::string& name) {
  static const TinyQaBase* base = [&] {
    const auto dir = scratch_path(name);
    std::filesystem::remove_all(dir);
    auto options = tiny_pretrain_options(dir);
    options.steps = 200;
    options.lr = 3e-3;
    editlab::pretrain::pretrain(options);
    return new TinyQaBase{dir, editlab::world::make_benchmark(editlab::world::generate(options.world), "qa")};
  }();
  return *base;
}
