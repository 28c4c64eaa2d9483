// Data in and out: .npy/.npz, images (through sharp) and JSON Lines.
export { NpyArray, NpyData, NpyDType, NpyWritable, LoadNpyOptions, parseNpy, toNpy, saveNpy, loadNpy, readNpy, npyToTensor, parseNpz, toNpz, saveNpz, loadNpz, writeAtomic } from "./npy";
export { ImageOptions, ImageBatch, IMAGE_EXTENSIONS, loadImage, loadImageFolder, loadImageFiles, listImages } from "./image";
export { JsonLinesRow, JsonLinesBatch, parseJsonLines, loadJsonLines, toJsonLines, saveJsonLines } from "./jsonl";
