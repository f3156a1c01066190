// editlab::world — the knowledge world: a seeded generator of entities, facts, a taxonomy and
// short passages, the embedded default that every editor is trained and measured on.
//
//   editlab::world::WorldOptions options;          // sizes; options.seed picks the world
//   editlab::world::World w = editlab::world::generate(options);
//   const auto& f = w.facts[0];                     // (relation, subject, object) ids
//   w.question(f, 0)    // "Where was Talimo born?"  (phrasing 0, a training phrasing)
//   w.answer(f)         // "Brisvo"
//   w.serialize()       // every generated string, one per line: byte-identical per seed
//
// Determinism: every choice comes from tt::Rng::below (integer draws, no floating point) and
// containers are walked in index order, so a seed gives the same world on every machine.
//
// Contents (see docs/editing.md):
//  * named entities of six kinds (people, cities, countries, organisations, universities,
//    languages) with generated, pronounceable, unique names;
//  * 8 relations between them, each with 8 question phrasings (6 training, 2 held out),
//    4 statement phrasings (3 training, 1 held out) and 4 relation names (2 training, 2 held
//    out) — held-out forms never appear in pretraining data;
//  * a taxonomy of living things (levels of classes, species as members) whose classes carry
//    properties that members inherit ("A X is a Y." + "A Y has fur." => "A X has fur."),
//    stated positively or negated ("A X does not have fur.");
//  * one short passage per person and per organisation, written from its facts.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensortape/core/error.hpp"
#include "tensortape/core/rng.hpp"

namespace editlab::world {

namespace tt = tensortape;

enum class Kind { person, city, country, organisation, university, language };

inline const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::person: return "person";
    case Kind::city: return "city";
    case Kind::country: return "country";
    case Kind::organisation: return "organisation";
    case Kind::university: return "university";
    case Kind::language: return "language";
  }
  return "?";
}

struct WorldOptions {
  std::uint64_t seed = 1;
  int people = 110;
  int cities = 24;
  int countries = 8;
  int organisations = 20;
  int universities = 10;
  int languages = 8;
  // Taxonomy: taxonomy_branching[i] children under each class of level i (level 0 = the
  // roots' count). Depth = number of class levels (3 here, plus the species level = 4).
  std::vector<int> taxonomy_branching = {2, 3, 2};
  int species_per_leaf_class = 8;
  int properties_per_class = 2;
  // The stress variant: every entity's name is two to four capitalised one-syllable parts drawn
  // from a pool a third as large as the entities ("Bris Ta", "Ta Kren Dou"), so a name part
  // does not tell one subject from another, and the benchmarks draw unseen out-scope examples
  // about subjects that share a name part or an object with the edit (benchmarks.hpp).
  bool stress = false;
};

struct Entity {
  std::string name;
  Kind kind;
};

// A relation's surface forms. "{s}" is the subject's name, "{o}" the object's.
struct Relation {
  std::string id;          // "born_in"
  Kind subject_kind;
  Kind object_kind;
  std::vector<std::string> questions;       // first num_train_questions are training phrasings
  std::vector<std::string> statements;      // first num_train_statements are training phrasings
  std::vector<std::string> names;           // relation names; first num_train_names training
  static constexpr int num_train_questions = 6;
  static constexpr int num_train_statements = 3;
  static constexpr int num_train_names = 2;
};

struct Fact {
  int relation;  // index into World::relations
  int subject;   // index into World::entities
  int object;    // index into World::entities
};

// A property a class of living things has: "has fur" / "does not have fur".
struct Property {
  std::string positive;  // "has fur"
  std::string negative;  // "does not have fur"
};

struct TaxonomyClass {
  std::string name;              // lower case, "trelvin"
  int parent = -1;               // index into World::classes; -1 for a root
  int level = 0;                 // 0 for roots
  std::vector<int> properties;   // own properties (indices into World::properties)
};

struct Species {
  std::string name;  // lower case
  int class_id;      // its (leaf) class
};

struct Passage {
  int subject;                    // the person or organisation it is about
  std::vector<std::string> sentences;
  std::string text() const {
    std::string out;
    for (const auto& s : sentences) out += (out.empty() ? "" : " ") + s;
    return out;
  }
};

// Replaces every "{s}" and "{o}" in a template.
inline std::string fill_template(std::string_view pattern, std::string_view subject, std::string_view object = {}) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}' &&
        (pattern[i + 1] == 's' || pattern[i + 1] == 'o')) {
      out += pattern[i + 1] == 's' ? subject : object;
      i += 2;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

struct World {
  WorldOptions options;
  std::vector<Entity> entities;
  std::vector<Relation> relations;
  std::vector<Fact> facts;
  std::vector<Property> properties;
  std::vector<TaxonomyClass> classes;
  std::vector<Species> species;
  std::vector<Passage> passages;

  const std::string& name(int entity) const { return entities[entity].name; }
  std::string question(const Fact& f, int phrasing) const {
    return fill_template(relations[f.relation].questions.at(phrasing), name(f.subject));
  }
  std::string statement(const Fact& f, int phrasing, int object) const {
    return fill_template(relations[f.relation].statements.at(phrasing), name(f.subject), name(object));
  }
  std::string answer(const Fact& f) const { return name(f.object); }

  // Entity ids of one kind, in generation order.
  std::vector<int> entities_of(Kind kind) const {
    std::vector<int> out;
    for (int i = 0; i < static_cast<int>(entities.size()); ++i)
      if (entities[i].kind == kind) out.push_back(i);
    return out;
  }

  // The class and its ancestors, nearest first.
  std::vector<int> lineage(int class_id) const {
    std::vector<int> out;
    for (int c = class_id; c >= 0; c = classes[c].parent) out.push_back(c);
    return out;
  }
  // Every property a member of class_id has (own and inherited), sorted.
  std::vector<int> properties_of_class(int class_id) const {
    std::vector<int> out;
    for (int c : lineage(class_id))
      out.insert(out.end(), classes[c].properties.begin(), classes[c].properties.end());
    std::sort(out.begin(), out.end());
    return out;
  }
  bool class_has(int class_id, int property) const {
    const auto props = properties_of_class(class_id);
    return std::binary_search(props.begin(), props.end(), property);
  }

  // Sentences of the taxonomy.
  static std::string article(std::string_view noun) {
    return (std::string_view("aeiou").find(noun.front()) != std::string_view::npos) ? "An" : "A";
  }
  static std::string is_a(std::string_view member, std::string_view cls) {
    const std::string lower = article(cls) == "An" ? "an" : "a";
    return article(member) + " " + std::string(member) + " is " + lower + " " + std::string(cls) + ".";
  }
  std::string property_claim(std::string_view member, int property, bool negated) const {
    const Property& p = properties[property];
    return article(member) + " " + std::string(member) + " " + (negated ? p.negative : p.positive) + ".";
  }

  // Every generated string, one per line, in a fixed order: the determinism fingerprint and
  // the tokenizer's corpus.
  std::string serialize() const;
};

namespace detail {

// Pronounceable words from syllables: onset + vowel, 2 or 3 syllables, an optional coda.
inline std::string make_word(tt::Rng& rng) {
  static constexpr std::string_view onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s",
                                                "t", "v", "z", "br", "dr", "kr", "st", "tr", "gl", "sh", "th"};
  static constexpr std::string_view vowels[] = {"a", "e", "i", "o", "u", "ai", "ou", "ea"};
  static constexpr std::string_view codas[] = {"", "", "n", "r", "l", "s", "k", "m"};
  std::string word;
  const int syllables = 2 + static_cast<int>(rng.below(2));
  for (int i = 0; i < syllables; ++i) {
    word += onsets[rng.below(std::size(onsets))];
    word += vowels[rng.below(std::size(vowels))];
  }
  word += codas[rng.below(std::size(codas))];
  return word;
}

inline std::string capitalized(std::string word) {
  word[0] = static_cast<char>(word[0] - 'a' + 'A');
  return word;
}

// Draws words until one is new (across the whole world, so every name is unique).
inline std::string unique_word(tt::Rng& rng, std::set<std::string>& used) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::string word = make_word(rng);
    if (used.insert(word).second) return word;
  }
  tt::fail("editlab::world: could not draw a new unique name after 10000 attempts");
}

// The stress variant's name parts: one syllable each ("Bris", "Kra"), so that a name of two to
// four parts is about as many tokenizer pieces; never a word of the world's templates
// ("The", "Tell"), compared in lower case.
inline std::vector<std::string> make_name_parts(tt::Rng& rng, int count, const std::set<std::string>& template_words,
                                                std::set<std::string>& used) {
  static constexpr std::string_view onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s",
                                                "t", "v", "z", "br", "dr", "kr", "st", "tr", "gl", "sh", "th"};
  static constexpr std::string_view vowels[] = {"a", "e", "i", "o", "u", "ai", "ou", "ea"};
  static constexpr std::string_view codas[] = {"", "n", "r", "l", "s", "k", "m"};
  std::vector<std::string> parts;
  for (int attempt = 0; static_cast<int>(parts.size()) < count; ++attempt) {
    tt::check(attempt < 100000, "editlab::world: could not draw ", count, " distinct one-syllable name parts");
    // One draw per statement, coda first (the order g++ gave the published stress-world runs):
    // the operands of one expression may be evaluated in any order, and clang's differs.
    const std::string_view coda = codas[rng.below(std::size(codas))];
    const std::string_view vowel = vowels[rng.below(std::size(vowels))];
    const std::string_view onset = onsets[rng.below(std::size(onsets))];
    std::string part = std::string(onset) + std::string(vowel) + std::string(coda);
    if (template_words.count(part) || !used.insert(part).second) continue;
    parts.push_back(capitalized(part));
  }
  return parts;
}

// The stress variant's name: two to four distinct parts of `parts`, a combination no entity has
// yet (recorded in `used`).
inline std::string unique_compound_name(tt::Rng& rng, const std::vector<std::string>& parts, std::set<std::string>& used) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const std::size_t count = 2 + rng.below(3);
    std::vector<std::size_t> chosen;
    while (chosen.size() < count)
      if (const std::size_t i = rng.below(parts.size()); std::find(chosen.begin(), chosen.end(), i) == chosen.end())
        chosen.push_back(i);
    std::string name;
    for (std::size_t i : chosen) name += (name.empty() ? "" : " ") + parts[i];
    if (used.insert(name).second) return name;
  }
  tt::fail("editlab::world: could not draw a new compound name after 10000 attempts");
}

// The words of a text, split at spaces; a name's parts: "Talimo Kren" -> {"Talimo", "Kren"}
// (one part in the default world).
inline std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> out;
  for (std::size_t start = 0; start <= text.size();) {
    const std::size_t end = std::min(text.find(' ', start), text.size());
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

inline bool share_a_name_part(std::string_view a, std::string_view b) {
  const auto parts_b = words_of(b);
  for (std::string_view part : words_of(a))
    if (std::find(parts_b.begin(), parts_b.end(), part) != parts_b.end()) return true;
  return false;
}

template <class T>
void shuffle(std::vector<T>& items, tt::Rng& rng) {
  for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
}

inline std::vector<Relation> make_relations() {
  using K = Kind;
  return {
      {"born_in", K::person, K::city,
       {"Where was {s} born?", "In which city was {s} born?", "What is the birthplace of {s}?",
        "Which city is {s} from?", "Tell me where {s} was born.", "Give the birthplace of {s}.", "{s} was born in which city?", "Name the city where {s} was born."},
       {"{s} was born in {o}.", "The birthplace of {s} is {o}.", "{s} comes from {o}.", "{o} is where {s} was born."},
       {"place of birth", "birthplace", "city of birth", "born in"}},
      {"works_for", K::person, K::organisation,
       {"Who does {s} work for?", "Which organisation employs {s}?", "Who is the employer of {s}?",
        "Where does {s} work?", "Tell me who employs {s}.", "Give the organisation {s} works for.", "{s} is employed by which organisation?", "Name the employer of {s}."},
       {"{s} works for {o}.", "The employer of {s} is {o}.", "{s} is employed by {o}.", "{o} employs {s}."},
       {"employer", "works for", "employed by", "place of work"}},
      {"citizen_of", K::person, K::country,
       {"Which country is {s} a citizen of?", "What is the nationality of {s}?", "Of which country is {s} a citizen?",
        "What country does {s} belong to?", "Tell me the nationality of {s}.", "Give the country {s} is a citizen of.", "{s} holds citizenship of which country?", "Name the country of citizenship of {s}."},
       {"{s} is a citizen of {o}.", "The nationality of {s} is {o}.", "{s} holds a passport of {o}.", "{s} has citizenship of {o}."},
       {"country of citizenship", "nationality", "citizen of", "passport country"}},
      {"educated_at", K::person, K::university,
       {"Where did {s} study?", "Which university did {s} attend?", "Where was {s} educated?",
        "At which university did {s} study?", "Tell me where {s} studied.", "Give the university where {s} was educated.", "{s} graduated from which university?", "Name the university that {s} attended."},
       {"{s} studied at {o}.", "{s} was educated at {o}.", "{s} attended {o}.", "{s} graduated from {o}."},
       {"educated at", "alma mater", "university attended", "school of"}},
      {"speaks", K::person, K::language,
       {"What language does {s} speak?", "Which language is spoken by {s}?", "What is the native language of {s}?",
        "In which language does {s} talk?", "Tell me the language {s} speaks.", "Give the native language of {s}.", "{s} speaks which language?", "Name the language that {s} speaks."},
       {"{s} speaks {o}.", "The native language of {s} is {o}.", "{s} talks in {o}.", "{o} is spoken by {s}."},
       {"native language", "speaks", "language spoken", "mother tongue"}},
      {"located_in", K::city, K::country,
       {"In which country is {s}?", "Which country is {s} located in?", "Where is the city of {s}?",
        "Which country contains {s}?", "Tell me the country of {s}.", "Give the country where {s} is located.", "{s} lies in which country?", "Name the country where {s} lies."},
       {"{s} is in {o}.", "{s} is a city in {o}.", "{s} is located in {o}.", "{o} contains the city of {s}."},
       {"located in", "country", "in country", "lies in"}},
      {"founded_by", K::organisation, K::person,
       {"Who founded {s}?", "Who is the founder of {s}?", "By whom was {s} founded?",
        "Who started {s}?", "Tell me who founded {s}.", "Give the founder of {s}.", "{s} was founded by whom?", "Name the founder of {s}."},
       {"{s} was founded by {o}.", "The founder of {s} is {o}.", "{o} started {s}.", "{o} founded {s}."},
       {"founded by", "founder", "started by", "creator"}},
      {"headquartered_in", K::organisation, K::city,
       {"Where is {s} based?", "In which city is {s} headquartered?", "Where are the headquarters of {s}?",
        "Which city hosts {s}?", "Tell me where {s} is headquartered.", "Give the city that hosts {s}.", "{s} has its headquarters in which city?", "Name the city where {s} is based."},
       {"{s} is based in {o}.", "The headquarters of {s} are in {o}.", "{s} is headquartered in {o}.", "{o} is home to {s}."},
       {"headquarters location", "based in", "headquartered in", "head office"}},
  };
}

inline std::vector<Property> make_property_pool() {
  std::vector<Property> pool;
  for (std::string_view part : {"fur", "feathers", "scales", "wings", "a tail", "horns", "gills", "claws",
                                "a shell", "spots", "stripes", "a beak", "whiskers", "fins", "antlers", "tusks"})
    pool.push_back({"has " + std::string(part), "does not have " + std::string(part)});
  for (std::string_view verb : {"swim", "fly", "climb", "dig", "sing", "glow", "jump", "hibernate"})
    pool.push_back({"can " + std::string(verb), "cannot " + std::string(verb)});
  for (std::string_view food : {"seeds", "insects", "fish", "leaves", "fruit", "roots", "grass", "worms"})
    pool.push_back({"eats " + std::string(food), "does not eat " + std::string(food)});
  for (std::string_view place : {"caves", "trees", "rivers", "deserts", "swamps", "mountains", "forests", "lakes"})
    pool.push_back({"lives in " + std::string(place), "does not live in " + std::string(place)});
  for (std::string_view adjective : {"venomous", "nocturnal", "tiny", "huge", "striped", "blue", "loud", "shy",
                                     "fast", "slow", "green", "red"})
    pool.push_back({"is " + std::string(adjective), "is not " + std::string(adjective)});
  return pool;  // 52 properties
}

}  // namespace detail

inline World generate(const WorldOptions& options) {
  using detail::unique_word;
  tt::check(options.people >= 2 && options.cities >= 2 && options.countries >= 2 && options.organisations >= 2 &&
                options.universities >= 2 && options.languages >= 2,
            "editlab::world::generate: every entity kind needs at least 2 entities");
  tt::check(!options.taxonomy_branching.empty() && options.species_per_leaf_class >= 1 &&
                options.properties_per_class >= 1,
            "editlab::world::generate: the taxonomy needs at least one level, a species per leaf and a property per class");

  World world;
  world.options = options;
  world.relations = detail::make_relations();
  tt::Rng rng(options.seed);
  std::set<std::string> used;

  const int entity_count =
      options.people + options.cities + options.countries + options.organisations + options.universities + options.languages;
  std::vector<std::string> name_part_pool;  // the stress variant's shared name parts
  if (options.stress) {
    std::set<std::string> template_words;  // lower case
    auto add_words = [&](const std::string& text) {
      std::string word;
      for (char ch : text + " ")
        if (std::isalpha(static_cast<unsigned char>(ch))) word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        else if (!word.empty()) template_words.insert(std::exchange(word, {}));
    };
    for (const Relation& r : world.relations)
      for (const auto* forms : {&r.questions, &r.statements, &r.names})
        for (const std::string& form : *forms) add_words(form);
    for (const Property& p : detail::make_property_pool()) add_words(p.negative + " " + p.positive);
    add_words("a an is true false question claim relation has to context continue fill");
    name_part_pool = detail::make_name_parts(rng, std::max(6, entity_count / 3), template_words, used);
  }
  auto add_entities = [&](Kind kind, int count) {
    for (int i = 0; i < count; ++i)
      world.entities.push_back({options.stress ? detail::unique_compound_name(rng, name_part_pool, used)
                                               : detail::capitalized(unique_word(rng, used)),
                                kind});
  };
  add_entities(Kind::person, options.people);
  add_entities(Kind::city, options.cities);
  add_entities(Kind::country, options.countries);
  add_entities(Kind::organisation, options.organisations);
  add_entities(Kind::university, options.universities);
  add_entities(Kind::language, options.languages);

  // One object per (relation, subject): every subject of the relation's kind gets a fact.
  for (int r = 0; r < static_cast<int>(world.relations.size()); ++r) {
    const auto subjects = world.entities_of(world.relations[r].subject_kind);
    const auto objects = world.entities_of(world.relations[r].object_kind);
    for (int s : subjects) world.facts.push_back({r, s, objects[rng.below(objects.size())]});
  }

  // Taxonomy: classes level by level, properties drawn without replacement.
  std::vector<Property> pool = detail::make_property_pool();
  detail::shuffle(pool, rng);
  std::vector<int> level_classes;  // the classes of the previous level
  for (std::size_t level = 0; level < options.taxonomy_branching.size(); ++level) {
    std::vector<int> next;
    const std::vector<int> parents = level == 0 ? std::vector<int>{-1} : level_classes;
    for (int parent : parents)
      for (int i = 0; i < options.taxonomy_branching[level]; ++i) {
        TaxonomyClass c{unique_word(rng, used), parent, static_cast<int>(level), {}};
        for (int p = 0; p < options.properties_per_class; ++p) {
          tt::check(world.properties.size() < pool.size(), "editlab::world::generate: the taxonomy needs more than the ",
                    pool.size(), " properties in the pool; use fewer classes or properties_per_class");
          c.properties.push_back(static_cast<int>(world.properties.size()));
          world.properties.push_back(pool[world.properties.size()]);
        }
        next.push_back(static_cast<int>(world.classes.size()));
        world.classes.push_back(std::move(c));
      }
    level_classes = std::move(next);
  }
  for (int leaf : level_classes)
    for (int i = 0; i < options.species_per_leaf_class; ++i) world.species.push_back({unique_word(rng, used), leaf});

  // Passages: a person's or an organisation's facts as sentences, statement phrasings drawn per
  // sentence.
  std::vector<int> passage_subjects = world.entities_of(Kind::person);
  for (int organisation : world.entities_of(Kind::organisation)) passage_subjects.push_back(organisation);
  for (int subject : passage_subjects) {
    Passage passage{subject, {}};
    for (const Fact& f : world.facts)
      if (f.subject == subject) {
        const int phrasing = static_cast<int>(rng.below(Relation::num_train_statements));
        passage.sentences.push_back(world.statement(f, phrasing, f.object));
      }
    world.passages.push_back(std::move(passage));
  }
  return world;
}

inline std::string World::serialize() const {
  std::string out = "# editlab knowledge world, seed " + std::to_string(options.seed) + (options.stress ? ", stress variant" : "") + "\n";
  for (const Entity& e : entities) out += std::string("entity\t") + kind_name(e.kind) + "\t" + e.name + "\n";
  for (const Fact& f : facts)
    out += "fact\t" + relations[f.relation].id + "\t" + name(f.subject) + "\t" + name(f.object) + "\n";
  for (const TaxonomyClass& c : classes) {
    out += "class\t" + c.name + "\t" + (c.parent < 0 ? std::string("-") : classes[c.parent].name);
    for (int p : c.properties) out += "\t" + properties[p].positive;
    out += "\n";
  }
  for (const Species& s : species) out += "species\t" + s.name + "\t" + classes[s.class_id].name + "\n";
  for (const Passage& p : passages) out += "passage\t" + name(p.subject) + "\t" + p.text() + "\n";
  return out;
}

}  // namespace editlab::world
