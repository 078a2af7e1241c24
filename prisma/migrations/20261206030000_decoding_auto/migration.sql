-- decoding_method "auto": a request may leave the method to the head, which records its choice.
ALTER TYPE "DecodingMethod" ADD VALUE 'auto' BEFORE 'pipedec';

ALTER TABLE "GenerationRequest" ADD COLUMN "decoding" JSONB;
