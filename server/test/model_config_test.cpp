// config.pbtxt parsing in process: what the repository refuses, and the JSON form backends get.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "api_error.h"
#include "model_config.h"

namespace {

std::string parse_error(const std::string& text) {
  try {
    llm_server::parse_model_config(text, "m/config.pbtxt", "m");
  } catch (const llm_server::ApiError& e) {
    EXPECT_EQ(e.code(), TRITONSERVER_ERROR_INVALID_ARG);
    return e.what();
  }
  return "";
}

TEST(ModelConfigText, StringsThatAreNotUtf8AreRefusedNamingTheField) {
  // Text format takes byte escapes; protobuf strings must still be UTF-8 (found by fuzz_model_config).
  EXPECT_EQ(parse_error("backend: \"b\"\nparameters { key: \"k\\377\" value { string_value: \"v\" } }\n"),
            "failed to read text proto from m/config.pbtxt: parameters[0].key is not valid UTF-8 (protobuf strings "
            "must be; check the file's encoding and \\ escapes)");
  EXPECT_NE(parse_error("backend: \"b\"\ninput [ { name: \"ok\" }, { name: \"\\xc3\" } ]\n").find(": input[1].name is not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(parse_error("backend: \"b\xff\"\n").find(": backend is not valid UTF-8"), std::string::npos);
  // UTF-8, raw or escaped, is fine.
  EXPECT_EQ(parse_error("backend: \"b\"\nparameters { key: \"k\" value { string_value: \"caf\xc3\xa9 \\303\\251\" } }\n"), "");
}

TEST(ModelConfigText, NameAndParseErrorsAreNamed) {
  EXPECT_EQ(parse_error("name: \"other\"\nbackend: \"b\"\n"),
            "unexpected directory name 'm' for model 'other', directory name must equal model name");
  EXPECT_EQ(parse_error("backend: \"b\"\nmax_batch_size: x\n").rfind("failed to read text proto from m/config.pbtxt:2:", 0), 0u);
  EXPECT_EQ(llm_server::parse_model_config("backend: \"b\"", "m/config.pbtxt", "m").name(), "m");
}

TEST(ModelConfigText, TheBackendsJsonReadsBackToTheSameConfig) {
  inference::ModelConfig config = llm_server::parse_model_config(
      "backend: \"llm\"\nmax_batch_size: 2\ninput [ { name: \"x\" data_type: TYPE_INT32 dims: [ -1 ] } ]\n"
      "output [ { name: \"y\" data_type: TYPE_STRING dims: [ 1 ] } ]\n"
      "parameters { key: \"a\" value { string_value: \"1\" } }\nparameters { key: \"b\" value { string_value: \"2\" } }\n",
      "m/config.pbtxt", "m");
  llm_server::normalize_model_config(config);
  const std::string json = llm_server::model_config_to_json(config);
  EXPECT_EQ(nlohmann::json::parse(llm_server::model_config_to_json(llm_server::model_config_from_json(json))),
            nlohmann::json::parse(json));
  EXPECT_EQ(nlohmann::json::parse(json)["input"][0]["dims"], nlohmann::json::array({-1})) << "int64 dims as numbers";
}

}  // namespace
