// Original file: protos/model_config.proto


export interface ModelOperations {
  'opLibraryFilename'?: (string)[];
}

export interface ModelOperations__Output {
  'opLibraryFilename': (string)[];
}
