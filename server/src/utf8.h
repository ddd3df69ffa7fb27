#pragma once
// Protobuf string fields must hold valid UTF-8: strict clients (Python's gRPC, protobuf's own
// parsers) refuse a whole message over one bad byte. Text the server passes on from elsewhere (a
// backend's error message quoting a file's bytes, a model folder's name) goes through this first.
#include <string>
#include <string_view>

namespace llm_server {

// `text` with each ill-formed UTF-8 sequence (stray continuation bytes, truncated, overlong or
// surrogate encodings, code points past U+10FFFF) replaced by U+FFFD, one per maximal ill-formed
// subpart as Unicode recommends; valid text comes back unchanged.
std::string valid_utf8(std::string_view text);

}  // namespace llm_server
