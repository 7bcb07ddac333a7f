/**
 * Realistic-looking Instagram usernames and display names for the simulated world.
 * Only the seeded {@link Rng} decides anything, so the same seed yields the same names.
 */
import type { Rng } from './prng.js';

const FIRST_NAMES = [
  'anna',
  'mike',
  'sofia',
  'lucas',
  'emma',
  'noah',
  'olivia',
  'liam',
  'mia',
  'ethan',
  'ava',
  'mateo',
  'chloe',
  'leo',
  'zoe',
  'hugo',
  'lena',
  'jonas',
  'maria',
  'pablo',
  'yuki',
  'kenji',
  'aiko',
  'ravi',
  'priya',
  'arjun',
  'fatima',
  'omar',
  'layla',
  'yusuf',
  'ines',
  'tiago',
  'camila',
  'diego',
  'valentina',
  'marco',
  'giulia',
  'luca',
  'elena',
  'nikos',
  'eva',
  'tomas',
  'katya',
  'ivan',
  'olga',
  'piotr',
  'zofia',
  'jakub',
  'hanna',
  'erik',
  'freya',
  'nils',
  'astrid',
  'sven',
  'amelie',
  'jules',
  'manon',
  'theo',
  'clara',
  'felix',
  'sara',
  'david',
  'rachel',
  'daniel',
  'grace',
  'samuel',
  'lily',
  'jack',
  'ella',
  'henry',
  'amara',
  'kwame',
  'zara',
  'tariq',
  'nia',
  'kofi',
  'min',
  'jisoo',
  'hyun',
  'wei',
  'lin',
  'mei',
  'chen',
  'sakura',
  'kai',
  'nora',
  'adam',
  'julia',
  'oscar',
  'ruby',
] as const;

const LAST_NAMES = [
  'kowalski',
  'smith',
  'garcia',
  'muller',
  'rossi',
  'novak',
  'silva',
  'martin',
  'nguyen',
  'kim',
  'tanaka',
  'sato',
  'patel',
  'sharma',
  'khan',
  'ali',
  'haddad',
  'santos',
  'costa',
  'ferreira',
  'lopez',
  'moreau',
  'dubois',
  'lefevre',
  'schmidt',
  'weber',
  'fischer',
  'jensen',
  'hansen',
  'berg',
  'nowak',
  'wojcik',
  'petrov',
  'ivanova',
  'horvat',
  'popescu',
  'papadopoulos',
  'yilmaz',
  'demir',
  'cohen',
  'levi',
  'brown',
  'wilson',
  'taylor',
  'walker',
  'young',
  'clarke',
  'murphy',
  'kelly',
  'obrien',
  'mensah',
  'okafor',
  'adeyemi',
  'diallo',
  'park',
  'choi',
  'wang',
  'zhang',
  'liu',
  'huang',
  'romero',
  'alvarez',
  'castro',
  'vargas',
  'moretti',
  'bianchi',
  'conti',
  'lindqvist',
  'nielsen',
  'virtanen',
] as const;

const WORDS = [
  'travels',
  'photo',
  'photos',
  'art',
  'daily',
  'official',
  'studio',
  'eats',
  'fit',
  'life',
  'world',
  'journal',
  'design',
  'music',
  'beats',
  'kitchen',
  'coffee',
  'books',
  'reads',
  'runs',
  'yoga',
  'surf',
  'skate',
  'wanders',
  'films',
  'makes',
  'creates',
  'bakes',
  'garden',
  'plants',
  'vintage',
  'style',
  'looks',
  'beauty',
  'nails',
  'tattoo',
  'ink',
  'dogs',
  'cats',
  'pets',
  'moto',
  'bikes',
  'climbs',
  'hikes',
  'outdoors',
  'sea',
  'sunset',
  'city',
  'streets',
  'vibes',
] as const;

const PREFIXES = ['the', 'its', 'real', 'hey', 'just', 'iam', 'mr', 'ms', 'dr', 'chef'] as const;

/** Instagram's username rule: 1–30 chars of a-z 0-9 . _, not starting/ending with '.', no '..'. */
export const USERNAME_RE = /^(?!\.)(?!.*\.\.)(?!.*\.$)[a-z0-9._]{1,30}$/;

/** True when `name` is a valid Instagram username (lowercase form). */
export function isValidUsername(name: string): boolean {
  return USERNAME_RE.test(name);
}

/** A plausible birth year or lucky number suffix: "94", "1994", "7", "22". */
function numberSuffix(rng: Rng): string {
  const r = rng.next();
  if (r < 0.35) return String(rng.int(70, 99)).slice(-2);
  if (r < 0.6) return String(rng.int(1975, 2008));
  if (r < 0.8) return String(rng.int(0, 9));
  return String(rng.int(10, 99));
}

/**
 * One candidate username. It may collide with an earlier one or break the length rule; the caller
 * checks and draws again. Patterns mimic what people pick: "anna.kowalski", "mike_travels",
 * "the.sofia.art", "lucasgarcia94", "zoe.k_1998".
 */
export function candidateUsername(rng: Rng): string {
  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  const word = rng.pick(WORDS);
  const sep = rng.chance(0.55) ? '.' : '_';
  switch (rng.int(0, 11)) {
    case 0:
      return `${first}${sep}${last}`;
    case 1:
      return `${first}${sep}${last}${numberSuffix(rng)}`;
    case 2:
      return `${first}${last}${numberSuffix(rng)}`;
    case 3:
      return `${first}${sep}${word}`;
    case 4:
      return `${word}${sep}${first}`;
    case 5:
      return `${first}${numberSuffix(rng)}`;
    case 6:
      return `${rng.pick(PREFIXES)}${sep}${first}`;
    case 7:
      return `${first}${sep}${last.charAt(0)}${rng.chance(0.5) ? '_' : ''}${numberSuffix(rng)}`;
    case 8:
      return `${first}${sep}${last}${sep}${word}`;
    case 9:
      return `${rng.chance(0.5) ? '_' : ''}${first}${last}${rng.chance(0.5) ? '_' : ''}`;
    case 10:
      return `${word}${rng.chance(0.5) ? '_by_' : '.with.'}${first}`;
    default:
      return `${first}${rng.chance(0.5) ? '' : sep}${word}${numberSuffix(rng)}`;
  }
}

/**
 * Draws usernames until one is valid and not in `taken` (which it is added to). After 50 misses
 * it appends random digits, so a huge world still terminates.
 */
export function uniqueUsername(rng: Rng, taken: Set<string>): string {
  for (let attempt = 0; ; attempt++) {
    let name = candidateUsername(rng);
    if (attempt >= 50) name = `${name.slice(0, 22)}${rng.digits(rng.int(3, 7))}`;
    if (isValidUsername(name) && !taken.has(name)) {
      taken.add(name);
      return name;
    }
  }
}

/** A display name ("Anna Kowalski") derived from a username's parts, or "" like many real accounts. */
export function displayName(rng: Rng, username: string): string {
  if (rng.chance(0.2)) return '';
  const parts = username
    .split(/[._\d]+/)
    .filter((p) => p.length > 1)
    .slice(0, 2);
  return parts.map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join(' ');
}
