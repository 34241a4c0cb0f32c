r"""Every sentence a derivation document says, one table per language.

Documents are assembled by render.py from these messages and from maths printed by the
printers; templates hold only structure. A message is text with inline maths in $...$
(the same string serves LaTeX, Markdown and MyST, so it may use LaTeX in maths but no
LaTeX text commands, and none of the characters LaTeX treats specially in text:
& % # _ ~ ^ \ outside maths). Placeholders are written {{name}} and filled by
`message(lang, key, name=...)`; every language has the same keys and, per key, the same
placeholders (a test checks both).

The engine records its reasons as English strings (derivation.Step.reason);
ENGINE_REASONS maps each to the key of its translation, and `reason` translates a
reason, also one the engine joined from two with "; ".
"""

import re
import unicodedata

LANGUAGES = ("en", "zh")

_EN = {
    # ---------------------------------------------------------------- document
    "latex_comment": "Backpropagation derivation, written by derivgen from {{source}}.",
    "myst_comment": "MyST for Jupyter Book: the diagram needs mystmd, or sphinxcontrib-mermaid with Jupyter Book 1.",
    "title": "Backpropagation for {{name}}{{architecture}} with the loss {{loss}}",
    "title_name": "{{name}}: ",
    "loss_given": "The loss is {{loss}}, as given.",
    "loss_default": ("The loss is {{loss}}; it was chosen by default to follow the output activation "
                     "({{activation}}), because no loss was given. Choose another with {{option}}."),
    "loss_title": "{{title}} ({{name}})",
    "loss_mse": "squared error",
    "loss_bce": "binary cross-entropy",
    "loss_ce": "cross-entropy",
    "intro_checked": ("Every derivative, output error and simplification below was derived and checked by SymPy;\n"
                      "the generated NumPy code cites the equation tags, such as {{tags}}."),
    "tags_example": "({{first}}) or ({{second}})",
    "span": "{{first}} to {{last}}",
    # ---------------------------------------------------------------- sections
    "sec_network": "The network",
    "sec_notation": "Notation and conventions",
    "sec_forward": "Forward pass",
    "sec_loss": "Loss",
    "sec_activations": "Derivatives of the activations",
    "sec_output": "The output layer",
    "sec_dense": "The dense layer and the backward recursion",
    "sec_this_network": "This network",
    "sec_batch": "Batch form",
    "sec_algorithm": "Algorithm",
    "sec_cost": "Cost",
    # ---------------------------------------------------------------- the network
    "network_intro": ("The network has $L = {{L}}$ layers. Layer $l$ has $n_l$ units, a weight matrix\n"
                      "$W^{(l)}$ of shape $n_l \\times n_{l-1}$ and a bias $\\mathbf{b}^{(l)}$ of length $n_l$."),
    "col_activation": "activation",
    "col_parameters": "parameters",
    "row_input": "input",
    "row_total": "total",
    "diagram_intro": ("The forward pass runs down the diagram (solid arrows) and the backward pass up (dashed):\n"
                      "the error signal $\\boldsymbol{\\delta}^{(l)}$ reaches each layer and gives its weight and\n"
                      "bias gradients. The tags name the equations below."),
    "diagram_input": "input {{x}}",
    "diagram_layer": "layer {{l}}: {{units}}, {{activation}}",
    "diagram_layers": "layers {{first}}–{{last}} (×{{count}}): {{units}}, {{activation}}",
    "diagram_elided": "layers {{first}}–{{last}}",
    "diagram_units": "{{n}} units",
    "diagram_one_unit": "1 unit",
    "diagram_loss": "loss {{ell}} ({{name}}), target {{y}}",
    "diagram_for_layers": "for {{range}}",
    "diagram_layer_name": "layer {{l}}",
    "diagram_backward_box": "{{layers}}: {{delta}}",
    "diagram_forward": "forward pass",
    "diagram_backward": "backward pass",
    # ---------------------------------------------------------------- notation
    "notation_sample": ("One sample is a column vector: the input $\\mathbf{x} = \\mathbf{a}^{(0)} \\in \\mathbb{R}^{n_0}$,\n"
                        "  the target $\\mathbf{y} \\in \\mathbb{R}^{n_L}$, the prediction $\\hat{\\mathbf{y}} = \\mathbf{a}^{(L)}$."),
    "notation_preactivation": ("$\\mathbf{z}^{(l)} \\in \\mathbb{R}^{n_l}$ is the pre-activation and $\\mathbf{a}^{(l)}$ the\n"
                               "  activation of layer $l$; bold lower-case letters are vectors, capitals are matrices."),
    "notation_weights": ("$W^{(l)} \\in \\mathbb{R}^{n_l \\times n_{l-1}}$: the entry $W^{(l)}_{ij}$ is the weight from\n"
                         "  unit $j$ of layer $l-1$ to unit $i$ of layer $l$."),
    "notation_delta": ("$\\boldsymbol{\\delta}^{(l)} = \\partial \\ell / \\partial \\mathbf{z}^{(l)} \\in \\mathbb{R}^{n_l}$ is the\n"
                       "  error of layer $l$ for one sample, with $\\ell$ the loss of that sample."),
    "notation_hadamard": ("$\\odot$ is the elementwise (Hadamard) product; functions, powers and quotients of vectors act\n"
                          "  elementwise, and a number added to a vector is added to every entry."),
    "notation_iverson": "$[j = k]$ is the Iverson bracket: 1 when the condition holds, 0 otherwise.",
    "notation_transpose": "${}^{\\top}$ is the transpose; $\\mathbf{1}_B$ is the column of $B$ ones.",
    # ---------------------------------------------------------------- forward, loss
    "forward_general": "For every layer,",
    "forward_layers": "and for this network, with the shapes of each result:",
    "loss_intro": ("The loss of one sample sums a per-unit loss over the $n_L = {{n}}$ {{units}},\n"
                   "and the loss of a batch of $B$ samples is their mean:"),
    "output_unit": "output unit",
    "output_units": "output units",
    "mse_note": ("This is the textbook squared error, with the factor $\\tfrac{1}{2}$ and a sum (not a mean) "
                 "over the output units, so that its gradient is simply $a_k - y_k$. A framework's mean "
                 "squared error ({{torch}}, {{keras}}) averages over all $B \\cdot n_{L}$ elements and has no "
                 "$\\tfrac{1}{2}$: $L_{\\text{framework}} = \\tfrac{2}{n_{L}} L$ (here $n_{L} = {{n}}$), "
                 "so its loss and its gradients are $2/n_{L}$ times ours."),
    "logits_note": ("For numerical stability the generated code evaluates the loss of each output unit from the "
                    "pre-activations instead of from $a$ (the same value, without $\\log 0$ or overflow):"),
    # ---------------------------------------------------------------- activations
    "activations_intro": ("Each distinct activation is differentiated once by SymPy; where the derivative can be written\n"
                          "in terms of the output $a = \\varphi(z)$, that form is found and verified, so the backward pass\n"
                          "needs only the saved activations."),
    "softmax_note": ("Here $n$ is the number of units of the layer and $[j = k]$ is 1 when $j = k$ and 0 "
                     "otherwise. SymPy verified the last line by substituting $a_j = e^{z_j} / \\sum_i e^{z_i}$ "
                     "back: the difference simplifies to zero. The Jacobian needs only the saved outputs $a$."),
    "verified_note": ("The derivative in terms of the output $a = \\varphi(z)$ was verified {{how}}. "
                      "The backward pass therefore needs only the saved activations $a$."),
    "verified_symbolic": "symbolically: SymPy simplifies $\\varphi'(z) - g(\\varphi(z))$ to zero",
    "verified_numeric": ("numerically: SymPy could not simplify $\\varphi'(z) - g(\\varphi(z))$ to zero, "
                         "so the two were compared at {{points}} points and on both sides of every kink, "
                         "to a relative error below {{tolerance}}"),
    "no_output_form": ("The engine found no expression of $\\varphi'$ in the output $a$ alone (it tries "
                       "polynomials in $a$ of degree at most 2; when $\\varphi$ is not one-to-one, no function "
                       "of $a$ can work), so the backward pass evaluates $\\varphi'$ at the saved "
                       "pre-activation $z$."),
    "kink_smooth": ("At $z = {{point}}$ the two branches meet with the same slope, "
                    "so $\\varphi'({{point}}) = {{value}}$ holds exactly."),
    "kink": ("At the kink $z = {{point}}$, $\\varphi$ has no derivative (the slope jumps from "
             "${{left}}$ to ${{right}}$); the formula takes the value of the branch that "
             "holds there, $\\varphi'({{point}}) = {{value}}$, the conventional subgradient."),
    # ---------------------------------------------------------------- output layer
    "output_intro_softmax": ("Softmax couples the output units, so the chain rule sums over every output $j$. "
                             "For one sample, dropping the layer index $(L)$ and writing "
                             "$g_j = \\partial \\ell / \\partial a_j$, with the Jacobian {{ref}}:"),
    "output_intro_elementwise": ("The output activation acts unit by unit ($\\partial a_j / \\partial z_k = 0$ for "
                                 "$j \\ne k$), so each output unit can be treated alone. For one unit $k$, dropping "
                                 "the indices ($a = a^{(L)}_k$, $z = z^{(L)}_k$, $y = y_k$):"),
    "output_assumptions": ("The proof assumes {{stated}}: each target is a probability distribution over the "
                           "classes (one-hot labels qualify). For targets that do not sum to one, the line "
                           "before that step is the correct $\\delta$, not $a - y$."),
    "output_per_unit": "Per sample and per output unit $k$:",
    "output_collapses": ("The derivative of the activation cancels against the gradient of the loss: "
                         "$\\delta^{(L)}$ collapses to {{form}}, proved by SymPy (the quotient by $a - y$ "
                         "simplifies to a constant)."),
    "output_no_collapse": ("This does not collapse to $a - y$: SymPy finds no constant $c$ with "
                           "$\\delta = c\\,(a - y)$, because the derivative of the activation does not cancel "
                           "against the gradient of the loss. There is no shortcut to prove, so the factored form "
                           "above is exactly what the generated code computes, from {{inputs}}."),
    "output_from_a": "the saved output $a^{(L)}$ and the target $y$",
    "output_from_a_z": "the saved output $a^{(L)}$, the pre-activation $z^{(L)}$ and the target $y$",
    "output_vector": "In vector form (products $\\odot$, quotients and powers elementwise):",
    # ---------------------------------------------------------------- dense layer
    "dense_intro": ("The dense layer is differentiated once, in index notation, for any widths $n_l$ and $n_{l-1}$:\n"
                    "$i$ runs over the units of layer $l$, $j$ over those of layer $l-1$, and\n"
                    "$\\delta^{(l)}_i = \\partial \\ell / \\partial z^{(l)}_i$."),
    "dense_vectors": "As vectors and matrices the last three lines read",
    "dense_unit": "Layer $l-1$'s activation acts unit by unit, so",
    "dense_general": ("Writing $l$ for $l-1$ gives the backward recursion for every hidden layer $l < L$ and the gradients\n"
                      "of every layer:"),
    "dense_shapes": ("The shapes agree: $(W^{(l+1)})^{\\top}$ is $n_l \\times n_{l+1}$ and\n"
                     "$\\boldsymbol{\\delta}^{(l+1)} \\in \\mathbb{R}^{n_{l+1}}$, so their product, like "
                     "$\\varphi'(\\mathbf{z}^{(l)})$,\n"
                     "has $n_l$ entries; $\\boldsymbol{\\delta}^{(l)} (\\mathbf{a}^{(l-1)})^{\\top}$ is an outer\n"
                     "product of shape $n_l \\times n_{l-1}$, the shape of $W^{(l)}$."),
    "recursion_start": "The recursion starts from $\\boldsymbol{\\delta}^{({{L}})}$ of {{ref}}.",
    "no_hidden": "This network has no hidden layer, so there is nothing to propagate.",
    "delta_note_one": "The derivative of {{name}} is 1, so nothing multiplies.",
    "delta_note_z": "The derivative of {{name}} has no form in $a$, so it is evaluated at the saved ${{z}}$.",
    "layer_gradients": "The gradients of each layer:",
    # ---------------------------------------------------------------- batch
    "batch_intro": ("A batch of $B$ samples is stacked as rows: $X = A^{(0)} \\in \\mathbb{R}^{B \\times n_0}$,\n"
                    "$Y \\in \\mathbb{R}^{B \\times n_L}$, and row $s$ of $A^{(l)}$, $Z^{(l)}$ and $\\Delta^{(l)}$ is\n"
                    "$(\\mathbf{a}^{(l)})^{\\top}$, $(\\mathbf{z}^{(l)})^{\\top}$ and\n"
                    "$(\\boldsymbol{\\delta}^{(l)})^{\\top}$ of sample $s$. The forward pass is"),
    "batch_delta_intro": "The output error stacks the per-sample deltas of {{ref}} as rows,",
    "batch_delta_softmax": "\\Delta^{(L)}_{sk} = \\delta^{(L)}_{k}\\ \\text{of sample } s",
    "batch_hidden_intro": "and the recursion for $l < L$, row by row the same as {{ref}}, is",
    "batch_grad_intro": ("Because $L$ is the mean of the per-sample losses, each gradient is the mean of the per-sample\n"
                         "gradients; summing $\\boldsymbol{\\delta}^{(l)} (\\mathbf{a}^{(l-1)})^{\\top}$ over the samples is the\n"
                         "matrix product $(\\Delta^{(l)})^{\\top} A^{(l-1)}$:"),
    "batch_one_over_b": ("The factor $1/B$ appears exactly once, from the mean in {{ref}}; the $\\Delta^{(l)}$ carry\n"
                         "none. The generated code folds it into $\\Delta^{(L)}$ once: the recursion is linear in "
                         "$\\Delta$, so every\n"
                         "$\\Delta^{(l)}$ it computes is already divided by $B$ and the gradients need no further factor."),
    "penalty_intro": ("With L2 weight decay $\\lambda = {{value}}$ each layer adds a penalty $R^{(l)}$ to the batch\n"
                      "loss, differentiated by SymPy once like everything else:"),
    "penalty_total": ("so the loss the code minimises and its weight gradients (biases are not decayed) are"),
    # ---------------------------------------------------------------- algorithm
    "alg_forward": ("Forward: $A^{(0)} = X$; for $l = {{layers}}$ compute $Z^{(l)}$ and $A^{(l)}$, "
                    "by {{refs}}."),
    "alg_save": "Save the activations ${{list}}$ {{keep}}",
    "alg_keep_z": ("and the pre-activations $Z^{(l)}$ for $l = {{layers}}$, whose derivatives have no form "
                   "in $A^{(l)}$."),
    "alg_keep_a": ("only: every derivative is written in terms of $A^{(l)}$, so the pre-activations need not "
                   "be kept."),
    "alg_loss": "Loss: $L = \\frac{1}{B} \\sum_s \\ell_s$, by {{ref}}.",
    "alg_output": ("Output error: $\\Delta^{({{L}})}$, row by row from {{ref}}, as in {{batch_ref}}; "
                   "the code multiplies it by $1/B$ here, once."),
    "alg_loop": ("Loop back: for $l = {{layers}}$, $\\Delta^{(l)} = (\\Delta^{(l+1)} W^{(l+1)}) \\odot "
                 "\\varphi'^{(l)}$, by {{refs}}."),
    "alg_gradients": ("Gradients: for every layer, $\\partial L / \\partial W^{(l)}$ and $\\partial L / \\partial "
                      "\\mathbf{b}^{(l)}$, by {{ref_w}} and {{ref_b}}."),
    "alg_update": ("Update (plain gradient descent with learning rate $\\eta$): "
                   "$W^{(l)} \\leftarrow W^{(l)} - \\eta\\, \\partial L / \\partial W^{(l)}$ and "
                   "$\\mathbf{b}^{(l)} \\leftarrow \\mathbf{b}^{(l)} - \\eta\\, \\partial L / \\partial \\mathbf{b}^{(l)}$."),
    # ---------------------------------------------------------------- cost
    "cost_intro": ("The matrix products dominate; the elementwise work ($\\varphi$, $\\varphi'$, biases) is\n"
                   "$O(B\\,n_l)$ per layer and is left out. Multiplying a $B \\times n_{l-1}$ matrix by an\n"
                   "$n_{l-1} \\times n_l$ one costs $2\\,B\\,n_l\\,n_{l-1}$ floating-point operations. Per layer:\n"
                   "the forward product $A^{(l-1)} (W^{(l)})^{\\top}$; the error propagation $\\Delta^{(l)} W^{(l)}$,\n"
                   "needed only for $l \\ge 2$ (nothing needs $\\Delta^{(0)}$); the weight gradient\n"
                   "$(\\Delta^{(l)})^{\\top} A^{(l-1)}$. Each costs $2\\,B\\,n_l\\,n_{l-1}$. The first row gives the "
                   "formulas; the\n"
                   "others count this network for one sample ($B = 1$; multiply by $B$ for a batch):"),
    "col_forward": "forward",
    "col_error": "error propagation",
    "col_weight": "weight gradient",
    "col_total": "total",
    "cost_summary": ("A training step (forward and backward) costs about {{total}} $B$ operations, or\n"
                     "{{ratio}} times the forward pass alone."),
    # ---------------------------------------------------------------- the engine's reasons
    "piecewise_for": "for",
    "piecewise_otherwise": "otherwise",
    "reason_separator": "; ",
    "reason_definition": "definition",
    "reason_differentiate": "differentiate",
    "reason_in_output_symbolic": "with $a = \\varphi(z)$; verified symbolically",
    "reason_in_output_numeric": "with $a = \\varphi(z)$; verified numerically",
    "reason_quotient_rule": "quotient rule; the sum contributes only at $i = k$",
    "reason_softmax_in_a": "with $a_j = e^{z_j} / \\sum_i e^{z_i}$",
    "reason_chain_unit": "chain rule, unit by unit",
    "reason_substitute_derivatives": "substitute the derivatives",
    "reason_simplify": "simplify",
    "reason_collapse": "proved: the quotient by $(a - y)$ simplifies to a constant",
    "reason_collapse_k": "proved: the quotient by $(a_k - y_k)$ simplifies to a constant",
    "reason_chain_jacobian": "chain rule through the Jacobian, with $g_j = \\partial \\ell / \\partial a_j$",
    "reason_kronecker": "the Kronecker delta picks $j = k$",
    "reason_substitute_g": "substitute $g_j$",
    "reason_targets_sum": "the targets sum to one",
    "reason_dense": "the dense layer",
    "reason_chain_w": "chain rule; only $z_i$ depends on $W_{ij}$",
    "reason_chain": "chain rule",
    "reason_chain_input": "chain rule; every $z_i$ depends on $a_j$",
    "reason_weight_decay": "weight decay of one layer",
    "reason_decay_term": "only the square of $W_{ij}$ itself depends on $W_{ij}$",
}

_ZH = {
    # ---------------------------------------------------------------- document
    "latex_comment": "反向传播推导，由 derivgen 根据 {{source}} 生成。",
    "myst_comment": "供 Jupyter Book 使用的 MyST：示意图需要 mystmd，或在 Jupyter Book 1 中使用 sphinxcontrib-mermaid。",
    "title": "{{name}}{{architecture}} 的反向传播推导（损失函数 {{loss}}）",
    "title_name": "{{name}}：",
    "loss_given": "损失函数为{{loss}}，由用户指定。",
    "loss_default": ("损失函数为{{loss}}：由于没有指定损失函数，按输出层的激活函数（{{activation}}）默认选取。"
                     "可以用 {{option}} 选择其他损失函数。"),
    "loss_title": "{{title}}（{{name}}）",
    "loss_mse": "平方误差",
    "loss_bce": "二元交叉熵",
    "loss_ce": "交叉熵",
    "intro_checked": ("下文的每个导数、输出层误差信号和每一步化简都由 SymPy 推导并验证；\n"
                      "生成的 NumPy 代码在注释中引用公式标签，例如 {{tags}}。"),
    "tags_example": "({{first}}) 或 ({{second}})",
    "span": "{{first}} 至 {{last}}",
    # ---------------------------------------------------------------- sections
    "sec_network": "网络结构",
    "sec_notation": "记号与约定",
    "sec_forward": "前向传播",
    "sec_loss": "损失函数",
    "sec_activations": "激活函数的导数",
    "sec_output": "输出层",
    "sec_dense": "全连接层与反向递推",
    "sec_this_network": "本网络",
    "sec_batch": "批量形式",
    "sec_algorithm": "算法",
    "sec_cost": "计算量",
    # ---------------------------------------------------------------- the network
    "network_intro": ("网络共有 $L = {{L}}$ 层。第 $l$ 层有 $n_l$ 个单元、一个形状为 $n_l \\times n_{l-1}$ 的权重矩阵\n"
                      "$W^{(l)}$ 和一个长度为 $n_l$ 的偏置 $\\mathbf{b}^{(l)}$。"),
    "col_activation": "激活函数",
    "col_parameters": "参数量",
    "row_input": "输入",
    "row_total": "合计",
    "diagram_intro": ("前向传播在图中自上而下（实线箭头），反向传播自下而上（虚线箭头）：\n"
                      "误差信号 $\\boldsymbol{\\delta}^{(l)}$ 传到每一层，由它得到该层的权重梯度和偏置梯度。\n"
                      "括号中的标签对应下文的公式。"),
    "diagram_input": "输入 {{x}}",
    "diagram_layer": "第 {{l}} 层：{{units}}，{{activation}}",
    "diagram_layers": "第 {{first}}–{{last}} 层（×{{count}}）：{{units}}，{{activation}}",
    "diagram_elided": "第 {{first}}–{{last}} 层",
    "diagram_units": "{{n}} 个单元",
    "diagram_one_unit": "1 个单元",
    "diagram_loss": "损失 {{ell}}（{{name}}），目标 {{y}}",
    "diagram_for_layers": "{{range}}",
    "diagram_layer_name": "第 {{l}} 层",
    "diagram_backward_box": "{{layers}}：{{delta}}",
    "diagram_forward": "前向传播",
    "diagram_backward": "反向传播",
    # ---------------------------------------------------------------- notation
    "notation_sample": ("单个样本写成列向量：输入 $\\mathbf{x} = \\mathbf{a}^{(0)} \\in \\mathbb{R}^{n_0}$，\n"
                        "  目标 $\\mathbf{y} \\in \\mathbb{R}^{n_L}$，预测 $\\hat{\\mathbf{y}} = \\mathbf{a}^{(L)}$。"),
    "notation_preactivation": ("$\\mathbf{z}^{(l)} \\in \\mathbb{R}^{n_l}$ 是第 $l$ 层的预激活值（净输入），"
                               "$\\mathbf{a}^{(l)}$ 是它的激活值；\n"
                               "  粗体小写字母表示向量，大写字母表示矩阵。"),
    "notation_weights": ("$W^{(l)} \\in \\mathbb{R}^{n_l \\times n_{l-1}}$：元素 $W^{(l)}_{ij}$ 是从第 $l-1$ 层的单元 $j$\n"
                         "  到第 $l$ 层的单元 $i$ 的权重。"),
    "notation_delta": ("$\\boldsymbol{\\delta}^{(l)} = \\partial \\ell / \\partial \\mathbf{z}^{(l)} \\in \\mathbb{R}^{n_l}$ "
                       "是第 $l$ 层对单个样本的误差信号，\n"
                       "  其中 $\\ell$ 是该样本的损失。"),
    "notation_hadamard": ("$\\odot$ 是逐元素乘积（哈达玛积）；向量的函数、幂和商都逐元素计算，\n"
                          "  数与向量相加表示加到每个分量上。"),
    "notation_iverson": "$[j = k]$ 是艾佛森括号：条件成立时为 1，否则为 0。",
    "notation_transpose": "${}^{\\top}$ 表示转置；$\\mathbf{1}_B$ 是由 $B$ 个 1 组成的列向量。",
    # ---------------------------------------------------------------- forward, loss
    "forward_general": "对每一层，",
    "forward_layers": "对本网络，各层的结果及其形状为：",
    "loss_intro": ("单个样本的损失是 $n_L = {{n}}$ 个{{units}}上逐单元损失之和，\n"
                   "含 $B$ 个样本的批量的损失是它们的平均值："),
    "output_unit": "输出单元",
    "output_units": "输出单元",
    "mse_note": ("这是教科书中的平方误差：带有因子 $\\tfrac{1}{2}$，并对输出单元求和（而不是求平均），"
                 "因此它的梯度就是 $a_k - y_k$。深度学习框架中的均方误差（{{torch}}、{{keras}}）"
                 "对全部 $B \\cdot n_{L}$ 个元素求平均，而且没有 $\\tfrac{1}{2}$："
                 "$L_{\\text{框架}} = \\tfrac{2}{n_{L}} L$（此处 $n_{L} = {{n}}$），"
                 "所以框架的损失及其梯度是本文的 $2/n_{L}$ 倍。"),
    "logits_note": ("为了数值稳定，生成的代码由预激活值而不是由 $a$ 计算每个输出单元的损失"
                    "（数值相同，但不会出现 $\\log 0$ 或溢出）："),
    # ---------------------------------------------------------------- activations
    "activations_intro": ("每个不同的激活函数只由 SymPy 求导一次；如果导数可以用输出 $a = \\varphi(z)$ 表示，\n"
                          "就找出这一形式并加以验证，这样反向传播只需要保存的激活值。"),
    "softmax_note": ("这里 $n$ 是该层的单元数，$[j = k]$ 在 $j = k$ 时为 1，否则为 0。"
                     "SymPy 把 $a_j = e^{z_j} / \\sum_i e^{z_i}$ 代回以验证最后一行：两者之差化简为零。"
                     "这个雅可比矩阵只需要保存的输出 $a$。"),
    "verified_note": ("导数关于输出 $a = \\varphi(z)$ 的表达式已{{how}}。"
                      "因此反向传播只需要保存的激活值 $a$。"),
    "verified_symbolic": "通过符号计算验证：SymPy 把 $\\varphi'(z) - g(\\varphi(z))$ 化简为零",
    "verified_numeric": ("通过数值验证：SymPy 无法把 $\\varphi'(z) - g(\\varphi(z))$ 化简为零，"
                         "因此在 {{points}} 个点上以及每个折点的两侧比较了两者，相对误差小于 {{tolerance}}"),
    "no_output_form": ("引擎没有找到只用输出 $a$ 表示 $\\varphi'$ 的表达式（它尝试 $a$ 的至多二次的多项式；"
                       "当 $\\varphi$ 不是一一映射时，$a$ 的任何函数都不可能成立），"
                       "因此反向传播在保存的预激活值 $z$ 处计算 $\\varphi'$。"),
    "kink_smooth": ("在 $z = {{point}}$ 处两个分支以相同的斜率相接，"
                    "因此 $\\varphi'({{point}}) = {{value}}$ 严格成立。"),
    "kink": ("在折点 $z = {{point}}$ 处 $\\varphi$ 不可导（斜率从 ${{left}}$ 跳到 ${{right}}$）；"
             "公式取该点所属分支的值 $\\varphi'({{point}}) = {{value}}$，即通常约定的次梯度。"),
    # ---------------------------------------------------------------- output layer
    "output_intro_softmax": ("softmax 把各个输出单元耦合在一起，所以链式法则要对每个输出 $j$ 求和。"
                             "对单个样本，省略层标 $(L)$，记 $g_j = \\partial \\ell / \\partial a_j$，"
                             "并利用雅可比矩阵 {{ref}}："),
    "output_intro_elementwise": ("输出层的激活函数逐单元作用（$j \\ne k$ 时 $\\partial a_j / \\partial z_k = 0$），"
                                 "所以每个输出单元可以单独处理。对单元 $k$，省略下标"
                                 "（$a = a^{(L)}_k$，$z = z^{(L)}_k$，$y = y_k$）："),
    "output_assumptions": ("证明中假设了 {{stated}}：每个目标都是各类别上的概率分布（独热标签满足这一条件）。"
                           "若目标之和不为一，则该步之前的那一行才是正确的 $\\delta$，而不是 $a - y$。"),
    "output_per_unit": "对每个样本和每个输出单元 $k$：",
    "output_collapses": ("激活函数的导数与损失函数的梯度相互抵消：$\\delta^{(L)}$ 化简为 {{form}}，"
                         "这由 SymPy 证明（除以 $a - y$ 的商化简为常数）。"),
    "output_no_collapse": ("这里不能化简为 $a - y$：SymPy 找不到常数 $c$ 使 $\\delta = c\\,(a - y)$，"
                           "因为激活函数的导数不与损失函数的梯度相互抵消。没有可证明的捷径，"
                           "所以上面的因式分解形式正是生成的代码所计算的，它用到{{inputs}}。"),
    "output_from_a": "保存的输出 $a^{(L)}$ 和目标 $y$",
    "output_from_a_z": "保存的输出 $a^{(L)}$、预激活值 $z^{(L)}$ 和目标 $y$",
    "output_vector": "写成向量形式（$\\odot$ 乘积、商和幂都逐元素计算）：",
    # ---------------------------------------------------------------- dense layer
    "dense_intro": ("全连接层用指标记号对任意宽度 $n_l$ 和 $n_{l-1}$ 只求导一次：\n"
                    "$i$ 遍历第 $l$ 层的单元，$j$ 遍历第 $l-1$ 层的单元，\n"
                    "$\\delta^{(l)}_i = \\partial \\ell / \\partial z^{(l)}_i$。"),
    "dense_vectors": "后三行写成向量和矩阵形式为",
    "dense_unit": "第 $l-1$ 层的激活函数逐单元作用，因此",
    "dense_general": "把 $l-1$ 换成 $l$，就得到每个隐藏层 $l < L$ 的反向递推式，以及每一层的权重梯度和偏置梯度：",
    "dense_shapes": ("形状是一致的：$(W^{(l+1)})^{\\top}$ 为 $n_l \\times n_{l+1}$，\n"
                     "$\\boldsymbol{\\delta}^{(l+1)} \\in \\mathbb{R}^{n_{l+1}}$，所以它们的乘积与 "
                     "$\\varphi'(\\mathbf{z}^{(l)})$ 一样\n"
                     "有 $n_l$ 个分量；$\\boldsymbol{\\delta}^{(l)} (\\mathbf{a}^{(l-1)})^{\\top}$ 是外积，\n"
                     "形状为 $n_l \\times n_{l-1}$，与 $W^{(l)}$ 相同。"),
    "recursion_start": "递推从 {{ref}} 中的 $\\boldsymbol{\\delta}^{({{L}})}$ 开始。",
    "no_hidden": "本网络没有隐藏层，因此无需向后传播。",
    "delta_note_one": "{{name}} 的导数为 1，因此不必乘任何因子。",
    "delta_note_z": "{{name}} 的导数无法用 $a$ 表示，因此在保存的 ${{z}}$ 处计算。",
    "layer_gradients": "各层的权重梯度和偏置梯度：",
    # ---------------------------------------------------------------- batch
    "batch_intro": ("含 $B$ 个样本的批量按行堆叠：$X = A^{(0)} \\in \\mathbb{R}^{B \\times n_0}$，\n"
                    "$Y \\in \\mathbb{R}^{B \\times n_L}$；$A^{(l)}$、$Z^{(l)}$ 和 $\\Delta^{(l)}$ 的第 $s$ 行分别是样本 $s$ 的\n"
                    "$(\\mathbf{a}^{(l)})^{\\top}$、$(\\mathbf{z}^{(l)})^{\\top}$ 和\n"
                    "$(\\boldsymbol{\\delta}^{(l)})^{\\top}$。前向传播为"),
    "batch_delta_intro": "输出层的误差信号把 {{ref}} 中各样本的 $\\boldsymbol{\\delta}$ 按行堆叠，",
    "batch_delta_softmax": "\\Delta^{(L)}_{sk} = \\text{样本 } s \\text{ 的 } \\delta^{(L)}_{k}",
    "batch_hidden_intro": "$l < L$ 时的递推（逐行看与 {{ref}} 相同）为",
    "batch_grad_intro": ("由于 $L$ 是各样本损失的平均值，每个梯度也是各样本梯度的平均值；\n"
                         "对所有样本求和 $\\boldsymbol{\\delta}^{(l)} (\\mathbf{a}^{(l-1)})^{\\top}$ 就是\n"
                         "矩阵乘积 $(\\Delta^{(l)})^{\\top} A^{(l-1)}$："),
    "batch_one_over_b": ("因子 $1/B$ 只出现一次，来自 {{ref}} 中的平均；$\\Delta^{(l)}$ 不含这个因子。\n"
                         "生成的代码把它一次性并入 $\\Delta^{(L)}$：递推关于 $\\Delta$ 是线性的，所以算出的每个\n"
                         "$\\Delta^{(l)}$ 都已经除以 $B$，梯度不再需要其他因子。"),
    "penalty_intro": "带 L2 权重衰减 $\\lambda = {{value}}$ 时，每一层给批量损失加上惩罚项 $R^{(l)}$，SymPy 像其他部分一样对它求导一次：",
    "penalty_total": "因此代码最小化的损失及其权重梯度（偏置不衰减）为",
    # ---------------------------------------------------------------- algorithm
    "alg_forward": "前向传播：$A^{(0)} = X$；对 $l = {{layers}}$ 依次计算 $Z^{(l)}$ 和 $A^{(l)}$，见 {{refs}}。",
    "alg_save": "保存激活值 ${{list}}${{keep}}",
    "alg_keep_z": "，以及 $l = {{layers}}$ 的预激活值 $Z^{(l)}$，因为这些层的导数无法用 $A^{(l)}$ 表示。",
    "alg_keep_a": "即可：每个导数都用 $A^{(l)}$ 表示，因此不必保存预激活值。",
    "alg_loss": "损失：$L = \\frac{1}{B} \\sum_s \\ell_s$，见 {{ref}}。",
    "alg_output": ("输出层误差信号：$\\Delta^{({{L}})}$，按 {{ref}} 逐行计算，如 {{batch_ref}}；"
                   "代码在这里一次性乘以 $1/B$。"),
    "alg_loop": ("反向递推：对 $l = {{layers}}$，$\\Delta^{(l)} = (\\Delta^{(l+1)} W^{(l+1)}) \\odot "
                 "\\varphi'^{(l)}$，见 {{refs}}。"),
    "alg_gradients": ("梯度：对每一层按 {{ref_w}} 和 {{ref_b}} 计算权重梯度 $\\partial L / \\partial W^{(l)}$ "
                      "和偏置梯度 $\\partial L / \\partial \\mathbf{b}^{(l)}$。"),
    "alg_update": ("更新（学习率为 $\\eta$ 的普通梯度下降）："
                   "$W^{(l)} \\leftarrow W^{(l)} - \\eta\\, \\partial L / \\partial W^{(l)}$，以及\n"
                   "$\\mathbf{b}^{(l)} \\leftarrow \\mathbf{b}^{(l)} - \\eta\\, \\partial L / \\partial \\mathbf{b}^{(l)}$。"),
    # ---------------------------------------------------------------- cost
    "cost_intro": ("矩阵乘法占主要部分；逐元素的运算（$\\varphi$、$\\varphi'$、偏置）每层为\n"
                   "$O(B\\,n_l)$，这里略去。$B \\times n_{l-1}$ 矩阵乘以\n"
                   "$n_{l-1} \\times n_l$ 矩阵需要 $2\\,B\\,n_l\\,n_{l-1}$ 次浮点运算。每层有：\n"
                   "前向乘积 $A^{(l-1)} (W^{(l)})^{\\top}$；误差传播 $\\Delta^{(l)} W^{(l)}$，\n"
                   "只在 $l \\ge 2$ 时需要（没有地方用到 $\\Delta^{(0)}$）；权重梯度\n"
                   "$(\\Delta^{(l)})^{\\top} A^{(l-1)}$。每项都需要 $2\\,B\\,n_l\\,n_{l-1}$ 次运算。表中第一行给出公式，\n"
                   "其余各行按单个样本（$B = 1$；批量时乘以 $B$）统计本网络："),
    "col_forward": "前向",
    "col_error": "误差传播",
    "col_weight": "权重梯度",
    "col_total": "合计",
    "cost_summary": ("一个训练步（前向加反向）约需 {{total}} $B$ 次运算，\n"
                     "是单独前向传播的 {{ratio}} 倍。"),
    # ---------------------------------------------------------------- the engine's reasons
    "piecewise_for": "若",
    "piecewise_otherwise": "其他情况",
    "reason_separator": "；",
    "reason_definition": "定义",
    "reason_differentiate": "求导",
    "reason_in_output_symbolic": "代入 $a = \\varphi(z)$；已通过符号计算验证",
    "reason_in_output_numeric": "代入 $a = \\varphi(z)$；已通过数值验证",
    "reason_quotient_rule": "商法则；求和只在 $i = k$ 处有贡献",
    "reason_softmax_in_a": "代入 $a_j = e^{z_j} / \\sum_i e^{z_i}$",
    "reason_chain_unit": "逐单元应用链式法则",
    "reason_substitute_derivatives": "代入导数",
    "reason_simplify": "化简",
    "reason_collapse": "已证明：除以 $(a - y)$ 的商化简为常数",
    "reason_collapse_k": "已证明：除以 $(a_k - y_k)$ 的商化简为常数",
    "reason_chain_jacobian": "经雅可比矩阵应用链式法则，其中 $g_j = \\partial \\ell / \\partial a_j$",
    "reason_kronecker": "克罗内克 $\\delta$ 只保留 $j = k$ 的项",
    "reason_substitute_g": "代入 $g_j$",
    "reason_targets_sum": "目标之和为一",
    "reason_dense": "全连接层",
    "reason_chain_w": "链式法则；只有 $z_i$ 依赖于 $W_{ij}$",
    "reason_chain": "链式法则",
    "reason_chain_input": "链式法则；每个 $z_i$ 都依赖于 $a_j$",
    "reason_weight_decay": "一层的权重衰减",
    "reason_decay_term": "只有 $W_{ij}$ 自身的平方项依赖于 $W_{ij}$",
}


def _unwrapped(table: dict[str, str]) -> dict[str, str]:
    """Chinese is written without spaces, and Markdown shows a line break inside a
    paragraph as one: the source's line breaks (and their indents) are removed between
    Chinese characters or next to a Chinese punctuation mark, and become one space
    elsewhere."""
    def join(match):
        before, after = match[1], match[2]
        def wide(c):
            return unicodedata.east_asian_width(c) in "WF"

        def wide_mark(c):
            return wide(c) and unicodedata.category(c).startswith("P")
        glued = (wide(before) and wide(after)) or wide_mark(before) or wide_mark(after)
        return before + ("" if glued else " ") + after
    return {key: re.sub(r"(.)\n *(.)", join, text) for key, text in table.items()}


MESSAGES = {"en": _EN, "zh": _unwrapped(_ZH)}
MATHS = {"batch_delta_softmax"}  # messages that are maths (a display's body), with prose in \\text{}

# The engine's reason strings (derive.py), each to the key of its message.
ENGINE_REASONS = {
    "definition": "reason_definition",
    "differentiate": "reason_differentiate",
    "with $a = \\varphi(z)$; verified symbolically": "reason_in_output_symbolic",
    "with $a = \\varphi(z)$; verified numerically": "reason_in_output_numeric",
    "quotient rule; the sum contributes only at i = k": "reason_quotient_rule",
    "with $a_j = e^{z_j} / \\sum_i e^{z_i}$": "reason_softmax_in_a",
    "chain rule, unit by unit": "reason_chain_unit",
    "substitute the derivatives": "reason_substitute_derivatives",
    "simplify": "reason_simplify",
    "proved: the quotient by $(a - y)$ simplifies to a constant": "reason_collapse",
    "proved: the quotient by $(a_k - y_k)$ simplifies to a constant": "reason_collapse_k",
    "chain rule through the Jacobian, with $g_j = \\partial \\ell / \\partial a_j$": "reason_chain_jacobian",
    "the Kronecker delta picks j = k": "reason_kronecker",
    "substitute g_j": "reason_substitute_g",
    "the targets sum to one": "reason_targets_sum",
    "the dense layer": "reason_dense",
    "chain rule; only $z_i$ depends on $W_{ij}$": "reason_chain_w",
    "chain rule": "reason_chain",
    "chain rule; every $z_i$ depends on $a_j$": "reason_chain_input",
    "weight decay of one layer": "reason_weight_decay",
    "only the square of $W_{ij}$ itself depends on $W_{ij}$": "reason_decay_term",
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def check_language(lang: str) -> str:
    if lang not in MESSAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    return lang


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def message(lang: str, key: str, **values) -> str:
    """The message `key` in `lang` with its {{placeholders}} filled; every placeholder
    must be given a value."""
    text = MESSAGES[lang][key]

    def fill(match):
        try:
            return str(values[match[1]])
        except KeyError:
            raise KeyError(f"message {key!r} needs a value for {{{{{match[1]}}}}}") from None

    return _PLACEHOLDER.sub(fill, text)


def _reason_parts(text: str) -> list[tuple[str | None, str]]:
    """(message key or None, English text) for each part of an engine reason: the reason
    itself when it is known, else the longest known runs of its '; '-separated parts."""
    if text in ENGINE_REASONS:
        return [(ENGINE_REASONS[text], text)]
    parts = text.split("; ")
    out, start = [], 0
    while start < len(parts):
        for end in range(len(parts), start, -1):
            joined = "; ".join(parts[start:end])
            if joined in ENGINE_REASONS or end == start + 1:
                out.append((ENGINE_REASONS.get(joined), joined))
                start = end
                break
    return out


def reason(lang: str, text: str) -> str:
    """An engine reason in `lang`, also one the engine joined from known reasons with
    '; '. An unknown reason (or part) is kept as it is, in English; tests check that
    every reason the engine gives is known."""
    table = MESSAGES[lang]
    return table["reason_separator"].join(table[key] if key else part for key, part in _reason_parts(text))


def untranslated(text: str) -> list[str]:
    """The parts of an engine reason that ENGINE_REASONS does not know."""
    return [part for key, part in _reason_parts(text) if key is None]
