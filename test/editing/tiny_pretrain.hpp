// A base model small enough to pretrain inside a test in about a second: a world of a dozen
// people and a one-block T5 of width 16. Tests set steps, batch size and the rest they need.
#pragma once

#include <filesystem>

#include "pretrain/pretrain.hpp"

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
