/** English names of the languages taskmoe's models are trained on, for GET /languages. */
export const LANGUAGE_NAMES: Record<string, string> = {
  en: 'English', cs: 'Czech', de: 'German', es: 'Spanish', fi: 'Finnish', fr: 'French', it: 'Italian',
  ja: 'Japanese', ko: 'Korean', nl: 'Dutch', pl: 'Polish', pt: 'Portuguese', ru: 'Russian', sv: 'Swedish',
  tr: 'Turkish', uk: 'Ukrainian', zh: 'Chinese',
};
