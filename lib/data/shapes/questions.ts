// questions.ts — one-word-answer questions about a scene, five kinds, and the
// deterministic train/validation/test examples built from them. Balance comes
// by construction: each question slot draws its kind uniformly and a target
// answer uniformly from the kind's answers (yes/no, zero..four, a colour, a
// shape) before the scene exists; scenes are then drawn from the split's seeds
// until one admits every slot. So no answer is predictable from the question
// text alone, and a scene seed belongs to exactly one split.
import { check } from '../../validate.js';
import { Rng, hashInts } from './random.js';
import { COLORS, GRID_SIZE, SHAPES, generateScene, objectAt, type Color, type Scene, type SceneObject, type Shape } from './scene.js';

export const QUESTION_KINDS = ['color_at', 'shape_of_color', 'count', 'exists', 'relation'] as const;
export type QuestionKind = (typeof QUESTION_KINDS)[number];

export const SPLITS = ['train', 'validation', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** Names of the 9 cells, row-major ("what color is the object in the top left?"). */
export const POSITIONS = ['top left', 'top', 'top right', 'left', 'center', 'right', 'bottom left', 'bottom', 'bottom right'] as const;
/** Count answers by value; questions are balanced over zero..four (five exists only as a word). */
export const COUNT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five'] as const;
/** Spatial relations: the answer is the object in the adjacent cell in this direction from the referred one. */
export const RELATIONS = [
  { words: 'left of', dRow: 0, dCol: -1 },
  { words: 'right of', dRow: 0, dCol: 1 },
  { words: 'above', dRow: -1, dCol: 0 },
  { words: 'below', dRow: 1, dCol: 0 },
] as const;

/** The answers each kind is balanced over. */
export const ANSWERS: Record<QuestionKind, readonly string[]> = {
  color_at: COLORS,
  shape_of_color: SHAPES,
  count: COUNT_WORDS.slice(0, 5),
  exists: ['yes', 'no'],
  relation: SHAPES,
};

/** The llava-1.5 prompt every model of the testbed is trained and asked with; the answer is one word (then </s>). */
export const PROMPT_TEMPLATE = 'USER: <image>\n{question} ASSISTANT:';

/** Every token of the questions and answers, lower case, '?' on its own, sorted (code-unit order). */
export const VOCABULARY: readonly string[] = [...new Set([
  '?', 'a', 'above', 'are', 'below', 'center', 'color', 'how', 'in', 'is', 'left', 'many', 'object', 'objects',
  'of', 'right', 'shape', 'the', 'there', 'top', 'bottom', 'what', 'yes', 'no',
  ...COLORS, ...SHAPES, ...SHAPES.map((s) => `${s}s`), ...COUNT_WORDS,
])].sort();

/** One question about one scene. `evidence` lists the objects (indices into scene.objects) the answer rests on. */
export interface Question {
  kind: QuestionKind;
  question: string;
  answer: string;
  evidence: number[];
  /** exists, answer no: the colour or the shape asked about is in the scene on another object (a POPE-style hard negative). */
  hardNegative?: boolean;
}

export interface Example {
  /** `${split}-${sceneIndex}-${slot}` */
  id: string;
  split: Split;
  /** Index of the scene in its split (examples of one scene are consecutive). */
  sceneIndex: number;
  /** generateScene(sceneSeed) is `scene`. */
  sceneSeed: number;
  scene: Scene;
  kind: QuestionKind;
  question: string;
  answer: string;
  evidence: number[];
}

const plural = (shape: Shape) => `${shape}s`;
const indicesWhere = (scene: Scene, test: (o: SceneObject) => boolean) =>
  scene.objects.flatMap((o, i) => (test(o) ? [i] : []));

/** Every valid question of one kind about a scene (the set the generator draws from). */
export function enumerateQuestions(scene: Scene, kind: QuestionKind): Question[] {
  const objects = scene.objects;
  switch (kind) {
    case 'color_at':
      return objects.map((o, i) => ({ kind, question: `what color is the object in the ${POSITIONS[o.row * GRID_SIZE + o.col]}?`, answer: o.color, evidence: [i] }));
    case 'shape_of_color':
      return COLORS.flatMap((color) => {
        const matches = indicesWhere(scene, (o) => o.color === color);
        return matches.length === 1 ? [{ kind, question: `what shape is the ${color} object?`, answer: objects[matches[0]!]!.shape, evidence: matches }] : [];
      });
    case 'count': {
      const ask = (question: string, matches: number[]): Question => ({ kind, question, answer: COUNT_WORDS[matches.length]!, evidence: matches });
      return [
        ...COLORS.map((color) => ask(`how many ${color} objects are there?`, indicesWhere(scene, (o) => o.color === color))),
        ...SHAPES.map((shape) => ask(`how many ${plural(shape)} are there?`, indicesWhere(scene, (o) => o.shape === shape))),
      ];
    }
    case 'exists':
      return COLORS.flatMap((color) => SHAPES.map((shape): Question => {
        const question = `is there a ${color} ${shape}?`;
        const matches = indicesWhere(scene, (o) => o.color === color && o.shape === shape);
        if (matches.length > 0) return { kind, question, answer: 'yes', evidence: matches };
        const distractors = indicesWhere(scene, (o) => o.color === color || o.shape === shape);
        return { kind, question, answer: 'no', evidence: distractors, hardNegative: distractors.length > 0 };
      }));
    case 'relation':
      return objects.flatMap((reference, referenceIndex) => {
        // The referred object must be the only one of its colour and shape.
        if (objects.some((o) => o !== reference && o.color === reference.color && o.shape === reference.shape)) return [];
        return RELATIONS.flatMap((relation): Question[] => {
          const neighbour = objectAt(scene, reference.row + relation.dRow, reference.col + relation.dCol);
          if (!neighbour) return [];
          // Read loosely ("anywhere left of"), the answer must not change: objects further along the line share its shape.
          for (let step = 2; step < GRID_SIZE; step++) {
            const further = objectAt(scene, reference.row + step * relation.dRow, reference.col + step * relation.dCol);
            if (further && further.shape !== neighbour.shape) return [];
          }
          return [{
            kind,
            question: `what shape is ${relation.words} the ${reference.color} ${reference.shape}?`,
            answer: neighbour.shape,
            evidence: [referenceIndex, objects.indexOf(neighbour)],
          }];
        });
      });
  }
}

/** Share of exists/no questions drawn from the hard negatives when the scene has one. */
const HARD_NEGATIVE_SHARE = 0.85;
/** Scenes tried for one plan before it is drawn again, and in all before giving up. */
const PLAN_ATTEMPTS = 5_000;
const MAX_ATTEMPTS = 1_000_000;
const SPLIT_CODE: Record<Split, number> = { train: 0, validation: 1, test: 2 };

/**
 * The seed of a scene candidate: the split in the top two bits, so the three
 * splits never share a seed, and a hash of (split, scene index, attempt) below.
 */
export function sceneSeedOf(split: Split, sceneIndex: number, attempt: number): number {
  const code = SPLIT_CODE[split];
  return ((code << 30) | (hashInts(code, sceneIndex, attempt) & 0x3fffffff)) >>> 0;
}

/** The split a scene seed belongs to. */
export function splitOfSeed(sceneSeed: number): Split {
  return SPLITS[sceneSeed >>> 30] ?? check.fail('ERR_GRIP_RANGE', 'a scene seed of the train, validation or test range', 'sceneSeed', String(sceneSeed));
}

/** The question of a slot with the given answer, not yet asked about this scene; undefined when the scene has none. */
function drawQuestion(scene: Scene, kind: QuestionKind, answer: string, asked: Set<string>, rng: Rng): Question | undefined {
  const candidates = enumerateQuestions(scene, kind).filter((q) => q.answer === answer && !asked.has(q.question));
  if (candidates.length === 0) return undefined;
  const hard = candidates.filter((q) => q.hardNegative);
  const useHard = rng.next() < HARD_NEGATIVE_SHARE;
  return rng.pick(useHard && hard.length > 0 ? hard : candidates);
}

/**
 * The examples of one scene: `questionsPerScene` slots planned first, then the
 * first candidate scene that admits them all. A plan no scene admits soon
 * (some cannot be met at all: counts of four, four and three in one scene) is
 * drawn again after PLAN_ATTEMPTS scenes; that happens for a few plans in a thousand.
 */
export function examplesOfScene(split: Split, sceneIndex: number, questionsPerScene: number): Example[] {
  const planRng = new Rng(hashInts(SPLIT_CODE[split], sceneIndex, 0x706c616e));
  const drawPlan = () => Array.from({ length: questionsPerScene }, () => {
    const kind = planRng.pick(QUESTION_KINDS);
    return { kind, answer: planRng.pick(ANSWERS[kind]) };
  });
  let plan = drawPlan();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (attempt > 0 && attempt % PLAN_ATTEMPTS === 0) plan = drawPlan();
    const sceneSeed = sceneSeedOf(split, sceneIndex, attempt);
    const scene = generateScene(sceneSeed);
    const rng = new Rng(hashInts(sceneSeed, 0x71756573));
    const asked = new Set<string>();
    const questions: Question[] = [];
    for (const slot of plan) {
      const question = drawQuestion(scene, slot.kind, slot.answer, asked, rng);
      if (!question) break;
      asked.add(question.question);
      questions.push(question);
    }
    if (questions.length < plan.length) continue;
    return questions.map((q, slot) => ({
      id: `${split}-${sceneIndex}-${slot}`,
      split,
      sceneIndex,
      sceneSeed,
      scene,
      kind: q.kind,
      question: q.question,
      answer: q.answer,
      evidence: q.evidence,
    }));
  }
  return check.fail('ERR_GRIP_INTERNAL', `a scene for the plan of ${split} scene ${sceneIndex} within ${MAX_ATTEMPTS} attempts`, 'examplesOfScene', 'none');
}

/**
 * The first `count` examples of a split, deterministic: scene i holds examples
 * i*q .. i*q+q-1 (q = questionsPerScene, default 1), so a shorter list is a
 * prefix of a longer one with the same q. Scene seeds of different splits never meet.
 */
export function makeExamples(split: Split, count: number, options: { questionsPerScene?: number } = {}): Example[] {
  check.oneOf(split, 'split', SPLITS);
  check.integer(count, 'count', 0, 100_000_000);
  const questionsPerScene = options.questionsPerScene ?? 1;
  check.integer(questionsPerScene, 'options.questionsPerScene', 1, 8);
  const out: Example[] = [];
  for (let sceneIndex = 0; out.length < count; sceneIndex++) {
    for (const example of examplesOfScene(split, sceneIndex, questionsPerScene)) if (out.length < count) out.push(example);
  }
  return out;
}
