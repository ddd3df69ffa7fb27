// Original file: protos/model_config.proto


export interface _inference_ModelMetrics_MetricControl_HistogramOptions {
  'buckets'?: (number | string)[];
}

export interface _inference_ModelMetrics_MetricControl_HistogramOptions__Output {
  'buckets': (number)[];
}

export interface _inference_ModelMetrics_MetricControl {
  'metricIdentifier'?: (_inference_ModelMetrics_MetricControl_MetricIdentifier | null);
  'histogramOptions'?: (_inference_ModelMetrics_MetricControl_HistogramOptions | null);
  'metricOptions'?: "histogramOptions";
}

export interface _inference_ModelMetrics_MetricControl__Output {
  'metricIdentifier': (_inference_ModelMetrics_MetricControl_MetricIdentifier__Output | null);
  'histogramOptions'?: (_inference_ModelMetrics_MetricControl_HistogramOptions__Output | null);
  'metricOptions'?: "histogramOptions";
}

export interface _inference_ModelMetrics_MetricControl_MetricIdentifier {
  'family'?: (string);
}

export interface _inference_ModelMetrics_MetricControl_MetricIdentifier__Output {
  'family': (string);
}

export interface ModelMetrics {
  'metricControl'?: (_inference_ModelMetrics_MetricControl)[];
}

export interface ModelMetrics__Output {
  'metricControl': (_inference_ModelMetrics_MetricControl__Output)[];
}
