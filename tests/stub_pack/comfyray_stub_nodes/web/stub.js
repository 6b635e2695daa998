// comfyray stub pack: a frontend extension file, served to check /extensions routing.
export const comfyrayStub = { name: "comfyray.stub" };
