// Pictures of attributions: images (PNG, through sharp) and text (HTML).
export { Colormap, RGB, COLORMAPS, getColormap, linearColormap } from "./colormaps";
export {
  ImageVisualizationMethod, VisualizeSign, IMAGE_METHODS, SIGNS, ImageLike, VisualizeImageOptions, VisualizeMultipleOptions,
  visualizeImageAttr, visualizeImageAttrMultiple, normalizeAttribution, cumulativeSumThreshold,
} from "./image";
export { VisualizationDataRecord, VisualizationDataRecordLike, VisualizeTextOptions, visualizeText, attributionColor } from "./text";
export { VisualizeInfluenceOptions, visualizeInfluence } from "./influence";
