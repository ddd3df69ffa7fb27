// The tests' own chat template in Llama-2's chat format: [INST] turns, a <<SYS>> block in the first.
export const llama2ChatTemplate = [
  "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}",
  '{% else %}{% set system = false %}{% set turns = messages %}{% endif %}',
  '{% for message in turns %}',
  "{% if message['role'] == 'user' %}",
  "{% set content = message['content'].strip() %}",
  "{% if loop.index0 == 0 and system != false %}{% set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content %}{% endif %}",
  "{{ bos_token + '[INST] ' + content + ' [/INST]' }}",
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}",
  '{% endfor %}',
].join('');
