#pragma once
// Recursive-descent parser for the jinja2 subset chat templates use; operator
// precedence follows jinja2's parser (filters bind tighter than arithmetic).
#include <string_view>

#include "chat/jinja_ast.h"

namespace nativelm::chat::jinja {

// Throws nativelm::Error "chat template syntax error at line N: ..." on bad input.
Body parse(std::string_view source);

}  // namespace nativelm::chat::jinja
